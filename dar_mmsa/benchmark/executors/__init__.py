"""Executors: who runs a plan's work units, and where.

``serial`` (the default) runs them one after another in this process, as the harness always has.
``ray`` hands each unit to a Ray task -- on a local Ray started on this machine's CPUs/GPUs, or on a
running cluster (``ray_address``) -- at most ``jobs`` at a time, each with ``cpus_per_run`` CPUs
(its torch thread count) and ``gpus_per_run`` GPUs (fractional: two small runs can share one).

Both run a unit through the same function (``execute.run_unit`` -> ``execute.execute_unit``), which
stores every training and evaluation as soon as it exists, so the tables do not depend on the
executor (bit-identical on CPU with the same thread count) and a rerun redoes nothing finished.

Interface: ``with make_executor(options) as executor: executor.start(settings);
executor.run(units, settings, progress=..., say=...)`` -> :class:`Execution`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch

from ...errors import ConfigError, StorageError

BACKENDS = ("serial", "ray")
DEFAULT_MAX_RETRIES = 2


@dataclass(frozen=True)
class BackendOptions:
    """How to execute the units; :meth:`checked` validates them (one error line each)."""

    backend: str = "serial"
    jobs: Optional[int] = None
    cpus_per_run: Optional[float] = None
    gpus_per_run: Optional[float] = None
    ray_address: Optional[str] = None
    max_retries: Optional[int] = None

    def checked(self) -> "BackendOptions":
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend '{self.backend}': choose one of {', '.join(BACKENDS)}")
        jobs = _number(self.jobs, "--jobs", int, minimum=1)
        cpus = _number(self.cpus_per_run, "--cpus-per-run", float, minimum=0, strict=True)
        gpus = _number(self.gpus_per_run, "--gpus-per-run", float, minimum=0)
        retries = _number(self.max_retries, "--max-retries", int, minimum=0)
        if gpus is not None and gpus > 1 and gpus != int(gpus):
            raise ConfigError(f"--gpus-per-run {self.gpus_per_run}: above 1 it must be a whole number of GPUs")
        if self.backend == "serial":
            ray_only = {"--jobs": jobs is not None and jobs > 1, "--gpus-per-run": gpus is not None,
                        "--ray-address": bool(self.ray_address), "--max-retries": retries is not None}
            given = [name for name, used in ray_only.items() if used]
            if given:
                raise ConfigError(f"{', '.join(given)} belong{'s' * (len(given) == 1)} to the Ray backend: "
                                  f"add --backend ray (pip install 'dar_mmsa[ray]')")
        return BackendOptions(self.backend, jobs, cpus, gpus, self.ray_address or None, retries)

    @property
    def threads(self) -> Optional[int]:
        """torch threads of one unit: its CPUs (at least 1); None: leave the process's setting."""
        if self.cpus_per_run is None:
            return 1 if self.backend == "ray" else None
        return max(1, math.floor(self.cpus_per_run))

    def resolve_device(self, device: str = "auto") -> torch.device:
        """The device runs are built for. Serial: as ``runner.resolve_device``. Ray: ``cuda`` (the
        GPU Ray assigns each task, seen by it as ``cuda:0``) exactly when ``gpus_per_run`` > 0."""
        from ... import runner

        if self.backend == "serial":
            return runner.resolve_device(device)
        gpus = self.gpus_per_run or 0
        if device in (None, "", "auto"):
            return torch.device("cuda" if gpus else "cpu")
        try:
            wanted = torch.device(device)
        except RuntimeError:
            raise ConfigError(f"unknown device '{device}': use auto, cpu or cuda") from None
        if wanted.type == "cuda" and not gpus:
            raise ConfigError(f"--device {device} with --backend ray: give --gpus-per-run (e.g. 1, or 0.5 for two "
                              f"runs per GPU); Ray assigns each run its GPU")
        if wanted.type == "cpu" and gpus:
            raise ConfigError("--gpus-per-run with --device cpu: drop one of them")
        return torch.device("cuda") if wanted.type == "cuda" else wanted


def _number(value, flag: str, kind, *, minimum, strict: bool = False):
    if value is None:
        return None
    try:
        number = kind(value)
        if kind is int and number != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{flag} {value} is not a{'n integer' if kind is int else ' number'}") from None
    if number < minimum or (strict and number == minimum):
        raise ConfigError(f"{flag} {value} must be {'above' if strict else 'at least'} {minimum}")
    return number


@dataclass
class Execution:
    """What an executor did: trainings and evaluations stored now, failed units (one line each)."""

    backend: str
    trained: int = 0
    evaluated: int = 0
    failures: List[str] = field(default_factory=list)
    units: int = 0
    already_done: int = 0
    wall_s: float = 0.0

    def record(self, outcome, bar, say) -> None:
        """Count one finished unit's outcome (``execute.UnitOutcome``) and show it on ``bar``; an
        outcome with a ``stop`` line (a full disk) ends the grid: StorageError, what is stored stays."""
        for line in outcome.notes:
            bar.say(say, line)
        if outcome.stop:
            raise StorageError(outcome.stop)
        self.trained += outcome.trained
        self.evaluated += outcome.evaluated
        if outcome.failure:
            self.failures.append(outcome.failure)
            bar.say(say, outcome.failure)
        bar.ended(failed=outcome.failure is not None)

    def describe(self) -> str:
        ran = self.units - self.already_done
        return (f"backend {self.backend}: {ran - len(self.failures)} of {ran} run(s) finished, "
                f"{len(self.failures)} failed, {self.already_done} already done, in {self.wall_s:.1f}s")


class Executor:
    """Runs work units. ``start`` checks what it needs before anything is trained (ConfigError)."""

    name = "?"

    def start(self, settings) -> None:
        pass

    def run(self, units: Sequence, settings, *, progress: bool, say) -> Execution:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_executor(options: BackendOptions) -> Executor:
    options = options.checked()
    if options.backend == "ray":
        from .ray_backend import RayExecutor

        return RayExecutor(options)
    from .serial import SerialExecutor

    return SerialExecutor(options)


__all__ = ["BACKENDS", "BackendOptions", "Execution", "Executor", "make_executor"]
