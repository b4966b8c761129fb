"""``dar_mmsa.benchmark.tuning.tune``: equal-budget hyperparameter search on validation for every
model (``run_benchmark.py --experiment tune``); see the package docstring."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from ...errors import ConfigError
from ...registry import DATASETS, ENV_DATA_ROOT, check_dataset, our_models
from ..executors import BackendOptions, make_executor
from ..grid import Condition
from ..plan import (DEFAULT_MODELS, QUICK_MODELS, Settings, check_models, check_seeds, check_speed,
                    data_description, default_name, is_synthetic, prepare_inputs, write_synthetic_data)
from ..presets import SMOKE_OVERRIDES
from ..store import ResultStore, write_atomic
from .outputs import best_trial, repeated_trials, write_outputs
from .records import read_trials
from .search import DEFAULT_TRIALS, DEFAULT_TUNE_RATES, SearchDefinition, check_budget, check_metric
from .serial import run_serial
from .space import check_space, search_space
from .trial import trial_args

DEFAULT_EPOCH_CAP = 30  # the epoch cap of the committed evidence runs
DEFAULT_TUNE_SEEDS = (1111,)
QUICK_TRIALS, QUICK_EPOCH_CAP = 3, 2  # --quick tuning: a pipeline check with --smoke's run settings
SUMMARY = "tuning_summary.txt"


@dataclass
class TuningResult:
    root: Path
    outputs: Dict[str, Path] = field(default_factory=dict)
    summary: str = ""
    failures: List[str] = field(default_factory=list)


def check_rates(rates: Sequence) -> tuple:
    rates = tuple(dict.fromkeys(Condition.intra(r).rates[0] for r in rates))
    if not rates:
        raise ConfigError("--tune-rates needs at least one validation missing rate, e.g. --tune-rates 0 0.3 0.6 0.9")
    return rates


def summary_text(root: Path, definitions: Sequence[SearchDefinition]) -> str:
    lines = [f"Tuning on validation ({root}):"]
    for d in definitions:
        records = read_trials(root, d)
        states = {s: sum(r["state"] == s for r in records) for s in ("complete", "pruned", "failed")}
        best = best_trial(records, d.direction)
        head = (f"  {d.key}: {len(records)} trials ({states['complete']} complete, {states['pruned']} pruned, "
                f"{states['failed']} failed")
        repeats = len(repeated_trials(records))
        head += f"; {repeats} repeat an earlier trial's params)" if repeats else ")"
        if best is None:
            lines.append(head + ", none complete")
            continue
        params = ", ".join(f"{k}={v}" for k, v in best["params"].items())
        lines.append(f"{head}; best trial {best['trial']}: {d.metric} {best['objective']:.4f}; {params}")
    lines.append(f"Run Table 1 with the tuned configs: --experiment table1 --config {root / 'tuned_config.json'}")
    return "\n".join(lines)


def tune(models: Optional[Sequence[str]] = None, datasets: Sequence[str] = ("mosi",), *,
         trials: Optional[int] = None, epoch_cap: Optional[int] = None, tune_seeds: Optional[Sequence[int]] = None,
         tune_metric: str = "Loss", tune_rates: Optional[Sequence[float]] = None, sampler_seed: int = 0,
         data_root=None, pretrained=None, device: str = "auto", out="results", name: Optional[str] = None,
         quick: bool = False, config_file=None, overrides: Optional[Mapping] = None, say=None,
         backend: str = "serial", jobs: Optional[int] = None, cpus_per_run: Optional[float] = None,
         gpus_per_run: Optional[float] = None, ray_address: Optional[str] = None, max_retries: Optional[int] = None,
         precision: str = "fp32", loader_workers: Optional[int] = None) -> TuningResult:
    """Search each model's declared space on validation with one budget for all, then write
    ``tuning.csv``, ``tuned_config.json``, ``tuning.tex`` and the progress figure under
    ``<out>/<name>/`` (default name ``tune-`` + the harness's). Rerunning resumes.

    Args:
        trials, epoch_cap, tune_seeds: the budget of every model (default 16 trials, 30 epochs,
            seed 1111; with ``quick``: 3 trials, 2 epochs).
        tune_metric: the validation metric (default ``Loss``: the loss each model selects on).
        tune_rates: validation missing rates the objective averages over (default 0, 0.3, 0.6, 0.9).
        sampler_seed: the TPE sampler's seed.
        The other arguments are :func:`dar_mmsa.benchmark.run`'s.
    """
    say = say or (lambda message: print(message, file=sys.stderr))
    _check_engines(backend)
    trials, epoch_cap = check_budget(trials if trials is not None else QUICK_TRIALS if quick else DEFAULT_TRIALS,
                                     epoch_cap if epoch_cap is not None else QUICK_EPOCH_CAP if quick
                                     else DEFAULT_EPOCH_CAP)
    metric = check_metric(tune_metric)
    rates = check_rates(DEFAULT_TUNE_RATES if tune_rates is None else tune_rates)
    seeds = check_seeds(tune_seeds or DEFAULT_TUNE_SEEDS)
    models = check_models(models or (QUICK_MODELS if quick else DEFAULT_MODELS))
    datasets = tuple(dict.fromkeys(check_dataset(d) for d in datasets))
    if not datasets:
        raise ConfigError(f"no datasets given: choose from {', '.join(DATASETS)}")
    config_file = Path(config_file) if config_file else None
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} not found: pass an existing --config or omit it")
    synthetic = (data_root is None and not os.environ.get(ENV_DATA_ROOT)) or \
        is_synthetic(data_root or os.environ[ENV_DATA_ROOT])
    store = ResultStore(Path(out).resolve() / (name or f"tune-{default_name(quick, synthetic)}"))
    options = BackendOptions(backend, jobs, cpus_per_run, gpus_per_run, ray_address, max_retries).checked()
    settings = Settings(models, datasets, seeds, (), options.resolve_device(device), config_file,
                        dict(SMOKE_OVERRIDES if quick else {}, **(overrides or {})), store)
    settings.precision, _, settings.loader_workers = check_speed(precision, None, loader_workers, settings.device,
                                                                 models, say)
    settings.store.check_writable()
    with settings.store.lock(), make_executor(options) as executor:
        scale = prepare_inputs(settings, data_root=data_root, pretrained=pretrained, quick=quick)
        if scale is not None and not quick:
            say(f"warning: no --data-root and no ${ENV_DATA_ROOT}: tuning on synthetic data")
        definitions = []
        for dataset in datasets:
            for model in models:
                args = trial_args(settings, SearchDefinition(model, dataset, {}, trials, epoch_cap, seeds),
                                  {}, seeds[0], None)
                space = search_space(model)
                if model not in our_models():  # MMSA's tune lists name a few keys its models never read
                    unused = sorted(k for k in space if k not in args)
                    if unused:
                        say(f"note: {model}: MMSA's config_tune.json lists {', '.join(unused)}, which its "
                            f"regression config lacks; not searched")
                    space = {k: v for k, v in space.items() if k in args}
                check_space(model, space, args)
                definition = SearchDefinition(model, dataset, space, trials, epoch_cap, seeds, rates, metric,
                                              sampler_seed)
                definitions.append((definition, args))
        if scale is not None:
            write_synthetic_data(settings.data_root, datasets, scale)
        checked: dict = {}
        for definition, args in definitions:
            data_description(args, definition.dataset, checked)
        executor.start(settings)
        definitions = [d for d, _ in definitions]
        for definition in definitions:
            say(f"tuning {definition.key}: {trials} trials, at most {epoch_cap} epochs each, "
                f"{len(definition.space)} hyperparameters ({options.backend} backend)")
            if options.backend == "ray":
                from .ray_tune import run_ray

                run_ray(definition, settings, store.root, executor, say)
            else:
                run_serial(definition, settings, store.root, say)
        with open(config_file or _default_config()) as f:
            base = json.load(f)
        outputs = write_outputs(store.root, definitions, base, synthetic=settings.synthetic, say=say)
    text = summary_text(store.root, definitions)
    write_atomic(store.root / SUMMARY, (text + "\n").encode())
    return TuningResult(store.root, outputs, text)


def _check_engines(backend: str) -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError("--experiment tune needs Optuna, which is not installed: "
                          "pip install 'dar_mmsa[tune]'") from None
    if backend == "ray":
        try:
            import ray.tune  # noqa: F401
        except ImportError:
            raise ConfigError("--experiment tune --backend ray needs Ray Tune, which is not installed: "
                              "pip install 'dar_mmsa[ray]'") from None


def _default_config() -> Path:
    from ...config import default_config_file

    return default_config_file()
