"""The robustness benchmark: grid planning (``grid``), evaluation under damaged test sets
(``evaluate``), the results store (``store``), aggregation (``aggregate``) and the entry point
:func:`run` (``api``); ``run_benchmark.py`` is a thin CLI over it."""
from .api import BenchmarkResult, report, run

__all__ = ["run", "report", "BenchmarkResult"]
