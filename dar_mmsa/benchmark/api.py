"""``dar_mmsa.benchmark.run``: the robustness benchmark of the DAR paper (Table 1, Figure 4), and
the inter-modal / per-modality protocols beyond it, for any registered model.

Flow: validate everything (models, datasets, rates, device, config, output folder, BERT, feature
pickles, stored data fingerprints, checkpoints for ``eval_only``) -> for each (dataset, model,
seed): train once through the model's own trainer (``dar_mmsa.runner``), move the checkpoint into
the store, evaluate it under every pending test condition (``evaluate``), store each evaluation
as soon as it exists (``store``) -> aggregate what this command asked for (``aggregate``) ->
CSVs, LaTeX tables and figures under ``<out>/<name>/`` and a summary on the terminal.

Data: ``data_root`` (or ``$DAR_MMSA_DATA_ROOT``) holding MMSA's ``MOSI/Processed/*.pkl``; without
one, synthetic data is written to ``<out>/.cache/`` and every output says "synthetic".
"""
from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import pandas as pd
import torch

from .. import runner
from ..errors import ConfigError
from ..registry import DATASETS, ENV_DATA_ROOT, check_dataset, check_model, list_models, our_models
from ..report.names import model_display_name
from . import aggregate
from .evaluate import evaluate, supports_importance
from .grid import (DEFAULT_DROP_RATES, DEFAULT_RATES, DEFAULT_SEEDS, Condition, TrainingRun, conditions_for,
                   parse_rates_per_modality, training_config_hash)
from .store import ResultStore, write_atomic

QUICK_MODELS = ("dar", "misa")
QUICK_SEEDS = DEFAULT_SEEDS  # cheap enough: the quick Table 1 averages 3 seeds like the paper
QUICK_SCALE = 0.1  # of the real split sizes: MOSI 128 / 23 / 69 samples
QUICK_OVERRIDES = {"max_epochs": 2, "epoch_cap": 2, "batch_size": 16}  # epoch_cap: ALMT (max_epochs shapes its schedule)
DEFAULT_MODELS = ("dar", "misa", "self_mm")
logger = logging.getLogger("dar_mmsa.benchmark")


@dataclass
class BenchmarkResult:
    """What a benchmark run produced; the DataFrames hold what this command asked for."""

    root: Path
    synthetic: bool
    evaluations: pd.DataFrame
    per_condition: pd.DataFrame
    table1: Optional[pd.DataFrame]
    inter: Optional[pd.DataFrame]
    files: List[Path] = field(default_factory=list)
    failures: List[str] = field(default_factory=list)
    trained: int = 0
    evaluated: int = 0
    summary: str = ""


@dataclass
class _Settings:
    models: Tuple[str, ...]
    datasets: Tuple[str, ...]
    seeds: Tuple[int, ...]
    conditions: Tuple[Condition, ...]
    device: torch.device
    config_file: Optional[Path]
    overrides: dict
    store: ResultStore
    data_root: Optional[Path] = None
    pretrained: Optional[str] = None
    synthetic: bool = False


# ----------------------------------------------------------------------------- validation
def _seeds(seeds: Iterable) -> Tuple[int, ...]:
    try:
        out = tuple(int(s) for s in seeds)
    except (TypeError, ValueError):
        raise ConfigError(f"seeds must be integers, got {list(seeds)}: e.g. --seeds 1111 1112 1113") from None
    if not out:
        raise ConfigError("no seeds given: e.g. --seeds 1111 1112 1113")
    return tuple(dict.fromkeys(out))


def _models(models: Iterable[str]) -> Tuple[str, ...]:
    out = tuple(dict.fromkeys(check_model(m) for m in models))
    if not out:
        raise ConfigError(f"no models given: choose from {', '.join(list_models())}")
    return out


def _default_name(quick: bool, synthetic: bool) -> str:
    if quick:
        return "synthetic-quick" if synthetic else "quick"
    return "synthetic" if synthetic else "default"


def _synthetic_root(cache: Path, scale: float) -> Path:
    return cache / f"synthetic-scale{scale:g}"


def _write_synthetic(root: Path, datasets: Sequence[str], scale: float) -> None:
    """Make sure ``root`` holds synthetic ``datasets`` at ``scale`` (written once, then reused)."""
    from ..data.synthetic import feature_path, read_marker, write_synthetic

    marker = read_marker(root) or {}
    done = marker.get("datasets", {}) if isinstance(marker.get("datasets"), dict) else {}
    missing = [d for d in datasets
               if (done.get(d) or {}).get("scale") != scale
               or not all(feature_path(root, d, a).is_file() for a in (False, True))]
    if missing:
        write_synthetic(root, datasets=tuple(missing), scale=scale, seed=0)


def _prepare_inputs(settings: _Settings, *, data_root, pretrained, quick: bool) -> Optional[float]:
    """Data root and BERT: the given ones, or (paths for) synthetic data and a tiny BERT in the cache.

    Returns the scale of the synthetic data still to be written (after the cheap checks), or None.
    """
    cache = settings.store.root.parent / ".cache"
    root = data_root or os.environ.get(ENV_DATA_ROOT) or None
    scale = None
    if root is None:
        scale = QUICK_SCALE if quick else 1.0
        root = _synthetic_root(cache, scale)
    root = Path(root).expanduser()
    if scale is None and not root.is_dir():
        raise ConfigError(f"data root {root} is not a directory: pass --data-root pointing at the folder "
                          f"holding MOSI/ and MOSEI/")
    settings.data_root = root
    settings.synthetic = scale is not None or _is_synthetic(root)
    if pretrained is None and quick:
        from ..text_encoder import write_tiny_bert

        with contextlib.redirect_stderr(io.StringIO()):  # transformers' shard-writing progress bar
            pretrained = write_tiny_bert(cache / "tiny-bert", num_layers=1)
    settings.pretrained = None if pretrained is None else str(pretrained)
    return scale


def _is_synthetic(root) -> bool:
    from ..data.synthetic import is_synthetic_root

    return is_synthetic_root(root)


def _build_args(settings: _Settings, model: str, dataset: str, seed: int, save_path=None):
    return runner.build_args(model, dataset, config_file=settings.config_file, data_root=settings.data_root,
                             pretrained=settings.pretrained, device=settings.device, seed=seed,
                             save_path=save_path, overrides=settings.overrides)


def _data_description(args, dataset: str, checked: Dict[str, dict]) -> dict:
    """Validate the feature pickle a run reads (once per file); returns path, fingerprint, synthetic."""
    from ..data.features import fingerprint, load_features

    path = Path(args["featurePath"])
    if str(path) not in checked:
        load_features(path, dataset, aligned=bool(args.get("need_data_aligned")), use_bert=bool(args.get("use_bert")))
        checked[str(path)] = {"feature_path": str(path), "fingerprint": fingerprint(path),
                              "synthetic": _is_synthetic(path.parents[2])}
    return checked[str(path)]


@dataclass
class _PlannedRun:
    run: TrainingRun
    args: dict
    data: dict = field(default_factory=dict)


def _plan(settings: _Settings) -> List[_PlannedRun]:
    """Every run's arguments (config entry, BERT and device checked) before any data is touched."""
    planned = []
    for dataset in settings.datasets:
        for model in settings.models:
            for seed in settings.seeds:
                args = _build_args(settings, model, dataset, seed)
                if not args.get("use_bert"):
                    raise ConfigError(f"model '{model}' reads GloVe text features: the protocol corrupts BERT "
                                      f"token ids ([UNK]), so use a BERT model (e.g. misa, self_mm, mmim, tfr_net)")
                planned.append(_PlannedRun(TrainingRun(model, dataset, seed, training_config_hash(args),
                                                       settings.conditions), args))
    return planned


def _check_data(planned: Sequence[_PlannedRun]) -> None:
    """Validate and fingerprint every feature pickle the runs read."""
    checked: Dict[str, dict] = {}
    for p in planned:
        p.data = _data_description(p.args, p.run.dataset, checked)


def _check_store(settings: _Settings, planned: Sequence[_PlannedRun], eval_only: bool) -> None:
    """Stored trainings must come from the same data; ``eval_only`` needs every checkpoint."""
    store = settings.store
    for p in planned:
        record = store.training(p.run.run_id)
        if record is not None and record["data"]["fingerprint"] != p.data["fingerprint"]:
            raise ConfigError(f"{store.root} holds {p.run.title} trained on other data "
                              f"({record['data']['feature_path']}, fingerprint {record['data']['fingerprint'][:19]}): "
                              f"pass another --name for this data")
        if eval_only and record is None:
            raise ConfigError(f"--eval-only: no saved checkpoint for {p.run.title} (config "
                              f"{p.run.config_hash[:12]}) in {store.root}: run without --eval-only to train it")


# ----------------------------------------------------------------------------- execution
def _versions() -> dict:
    from importlib import metadata

    import numpy
    import transformers

    from .. import __version__

    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "numpy": numpy.__version__, "MMSA": version("MMSA"), "dar_mmsa": __version__,
            "platform": platform.platform()}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _json_safe(args: Mapping) -> dict:
    return json.loads(json.dumps(dict(args), default=str))


class _LogStream(io.TextIOBase):
    """stderr during a run, into the run's log file; progress-bar redraws (``\\r``, cursor moves) are dropped."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, text):
        if "\r" not in text and "\x1b[" not in text:
            self.handle.write(text)
        return len(text)

    def flush(self):
        self.handle.flush()


@contextlib.contextmanager
def _run_log(path: Path):
    """Send MMSA's and our log records, and stderr (warnings, MMSA's tqdm), to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1) as handle:
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s [%(levelname)s] %(message)s"))
        loggers = [logging.getLogger("MMSA"), logger]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.addHandler(handler)
            lg.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stderr(_LogStream(handle)):
                yield handle
        finally:
            for lg, level in zip(loggers, levels):
                lg.removeHandler(handler)
                lg.setLevel(level)


class _Loaders:
    """MMSA's loaders of one (model, dataset), shared by its seeds (the data do not depend on the seed)."""

    CARRIED = ("seq_lens", "feature_dims", "train_samples")

    def __init__(self):
        self.key, self.loaders, self.args = None, None, None

    def get(self, args):
        key = (args["model_name"], args["dataset_name"], str(args["featurePath"]), args.get("batch_size"))
        if key != self.key:
            self.key, self.loaders, self.args = None, None, None  # free the previous data first
            self.loaders, self.args, self.key = runner.load_data(args), args, key
        else:
            for name in self.CARRIED:
                if name in self.args:
                    args[name] = self.args[name]
        return self.loaders


def _write_importance(store: ResultStore, run_id: str, key: str, columns: dict) -> Path:
    path = store.root / "importance" / run_id / f"{key}.csv"
    write_atomic(path, pd.DataFrame(columns).to_csv(index=False, float_format="%.6g").encode())
    return path


def _execute_run(p: _PlannedRun, settings: _Settings, loaders_cache: _Loaders, versions: dict,
                 status) -> Tuple[int, int]:
    """Train (if needed) and evaluate one run under its pending conditions; returns (trained, evaluated)."""
    store, run = settings.store, p.run
    record = store.training(run.run_id)
    pending = [c for c in run.conditions
               if record is None or store.evaluation(run.run_id, c.key, record["training_id"]) is None]
    if not pending:
        return 0, 0
    args, trained = p.args, 0
    loaders = loaders_cache.get(args)
    if record is None:
        status("training")
        args["model_save_path"] = store.partial_checkpoint(run.run_id)
        start = time.perf_counter()
        runner.train(args, loaders)
        wall = time.perf_counter() - start
        record = store.commit_training(run.run_id, {
            "model": run.model, "display_name": model_display_name(run.model), "dataset": run.dataset,
            "seed": run.seed, "config_hash": run.config_hash, "args": _json_safe(args), "data": p.data,
            "device": str(settings.device), "versions": versions, "train_wall_time_s": round(wall, 3),
            "finished_at": _now()})
        trained = 1
        logger.info(f"trained {run.title} in {wall:.1f}s -> {store.checkpoint(run.run_id)}")
    args["model_save_path"] = store.checkpoint(run.run_id)
    torch.manual_seed(run.seed)
    model = runner.load_checkpoint(runner.build_model(args), args)
    model.eval()
    trainer = runner.build_trainer(args)
    test_set = loaders["test"].dataset
    batch_size = int(args.get("batch_size") or 32)
    data_missing = bool(args.get("data_missing"))
    with_importance = (run.model in our_models() and not data_missing and
                       supports_importance(model, torch.utils.data.DataLoader(test_set, batch_size=2), settings.device))
    for condition in pending:
        status(f"eval {condition.label}")
        torch.manual_seed(run.seed)
        start = time.perf_counter()
        result = evaluate(model, trainer, test_set, condition, run.seed, batch_size=batch_size, device=settings.device,
                          data_missing=data_missing, with_importance=with_importance)
        wall = time.perf_counter() - start
        importance_file = None
        if result.importance is not None:
            importance_file = str(_write_importance(store, run.run_id, condition.key, result.importance)
                                  .relative_to(store.root))
        store.write_evaluation(run.run_id, condition.key, {
            "run_id": run.run_id, "training_id": record["training_id"], "model": run.model,
            "display_name": model_display_name(run.model), "dataset": run.dataset, "seed": run.seed,
            "config_hash": run.config_hash, "condition": condition.to_record(), "metrics": result.metrics,
            "n_test": result.n_samples, "eval_batch_size": batch_size, "wall_time_s": round(wall, 4),
            "realised_drop_fraction": result.realised_drop_fraction, "importance_file": importance_file,
            "device": str(settings.device), "versions": versions, "data": p.data, "finished_at": _now()})
        logger.info(f"{run.title} {condition.key}: {json.dumps(result.metrics)} ({wall:.2f}s)")
    return trained, len(pending)


def _execute(planned: Sequence[_PlannedRun], settings: _Settings, *, progress: bool, say) -> Tuple[int, int, List[str]]:
    from tqdm.auto import tqdm

    versions, loaders_cache = _versions(), _Loaders()
    trained = evaluated = 0
    failures: List[str] = []
    bar = tqdm(total=len(planned), desc="benchmark", unit="run", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    with bar:
        for p in planned:
            title = p.run.title
            log_path = settings.store.root / "logs" / f"{p.run.run_id}.log"

            def status(stage, title=title):
                bar.set_postfix_str(f"{title}: {stage}", refresh=True)

            status("loading")
            try:
                with _run_log(log_path) as log:
                    try:
                        t, e = _execute_run(p, settings, loaders_cache, versions, status)
                    except Exception:
                        log.write(traceback.format_exc())
                        raise
                trained, evaluated = trained + t, evaluated + e
            except Exception as exc:
                message = " ".join(f"error: {title} failed ({type(exc).__name__}: {exc}); see {log_path}".split())
                failures.append(message)
                with bar.external_write_mode(file=sys.stderr):
                    say(message)
            bar.update(1)
    return trained, evaluated, failures


# ----------------------------------------------------------------------------- reports
def _to_csv(frame: pd.DataFrame, path: Path) -> Path:
    write_atomic(path, frame.to_csv(index=False, float_format="%.6g").encode())
    return path


def _conditions_label(conditions: Sequence[Condition]) -> str:
    labels = [c.label for c in conditions]
    if all(c.rate is not None for c in conditions):
        return f"missing rate{'s' * (len(labels) > 1)} {', '.join(labels)}"
    return f"per-modality missing rates {'; '.join(labels)}"


def _write_reports(settings: _Settings, planned: Sequence[_PlannedRun], *, with_reported: bool, say) -> BenchmarkResult:
    from ..report import figures, latex

    store, root = settings.store, settings.store.root
    records = []
    for p in planned:
        training = store.training(p.run.run_id)
        if training is None:
            continue
        for c in p.run.conditions:
            record = store.evaluation(p.run.run_id, c.key, training["training_id"])
            if record is not None:
                records.append(record)
    frame = aggregate.records_frame(records)
    synthetic = settings.synthetic or bool((frame["data"] == "synthetic").any())
    model_order, condition_order = settings.models, [c.key for c in settings.conditions]
    per_cond = aggregate.per_condition(frame, model_order, condition_order)
    result = BenchmarkResult(root, synthetic, frame, per_cond, None, None)
    files = [_to_csv(frame, root / "evaluations.csv")]
    intra = per_cond[per_cond["protocol"] == "intra"]
    intra_conditions = [c for c in settings.conditions if c.protocol == "intra"]
    if len(intra):
        result.table1 = aggregate.table1(per_cond, model_order)
        files += [_to_csv(intra, root / "per_rate.csv"), _to_csv(result.table1, root / "table1.csv")]
        reported = latex.load_reported(settings.datasets) if with_reported else None
        tex = latex.table1_latex(result.table1, synthetic=synthetic, conditions=_conditions_label(intra_conditions),
                                 seeds=settings.seeds, reported=reported)
        write_atomic(root / "table1.tex", tex.encode())
        files.append(root / "table1.tex")
    inter = per_cond[per_cond["protocol"].isin(["subset", "drop"])]
    if len(inter):
        result.inter = aggregate.inter_table(per_cond, "Non0_acc_2", model_order)
        files += [_to_csv(inter, root / "inter.csv"), _to_csv(result.inter, root / "inter_table.csv")]
        if len(result.inter):
            write_atomic(root / "inter_table.tex",
                         latex.inter_latex(result.inter, synthetic=synthetic, seeds=settings.seeds).encode())
            files.append(root / "inter_table.tex")
    if figures.matplotlib_available():
        files += figures.figure4(per_cond, root / "figure4", synthetic=synthetic)
        files += figures.inter_figure(per_cond, root / "figure_inter", synthetic=synthetic)
    elif len(per_cond):
        say("warning: matplotlib is not installed, so no figures were drawn (pip install dar_mmsa[plot])")
    result.files = files
    return result


def _fmt_pct(value) -> str:
    return "--" if value is None or pd.isna(value) else f"{100 * value:.2f}"


def summary_text(result: BenchmarkResult, seeds: Sequence[int]) -> str:
    """The terminal summary: Table 1 (and the inter-modal table) in plain text."""
    data = "SYNTHETIC data" if result.synthetic else "real data"
    lines = []
    if result.table1 is not None and len(result.table1):
        lines.append(f"Table 1 ({data}): mean over test conditions and seeds {', '.join(map(str, seeds))}; "
                     f"Acc/F1 in %, Acc-2 and F1 as Has0/Non0")
        header = f"{'dataset':8} {'model':32} {'Acc-7':>6} {'Acc-5':>6} {'Acc-2':>13} {'F1':>13} {'MAE':>6} {'Corr':>6}"
        lines += [header, "-" * len(header)]
        for _, r in result.table1.iterrows():
            lines.append(f"{r['dataset']:8} {r['display_name'][:32]:32} {_fmt_pct(r['Mult_acc_7']):>6} "
                         f"{_fmt_pct(r['Mult_acc_5']):>6} "
                         f"{_fmt_pct(r['Has0_acc_2']) + '/' + _fmt_pct(r['Non0_acc_2']):>13} "
                         f"{_fmt_pct(r['Has0_F1_score']) + '/' + _fmt_pct(r['Non0_F1_score']):>13} "
                         f"{r['MAE']:6.3f} {r['Corr']:6.3f}")
    if result.inter is not None and len(result.inter):
        cols = [*aggregate.SUBSET_COLUMNS, "Avg"]
        lines.append("")
        lines.append(f"Inter-modal ({data}): Acc-2 Non0 (%) with only these modalities present")
        header = f"{'dataset':8} {'model':32} " + " ".join(f"{c:>6}" for c in cols)
        lines += [header, "-" * len(header)]
        for _, r in result.inter.iterrows():
            cells = " ".join(f"{_fmt_pct(r[c]):>6}" for c in cols)
            lines.append(f"{r['dataset']:8} {r['display_name'][:32]:32} {cells}")
    if not lines:
        lines.append("no finished evaluations to report")
    lines += ["", f"{result.trained} training run(s) and {result.evaluated} evaluation(s) done now; "
                  f"outputs in {result.root}/"]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- entry point
def run(models: Optional[Sequence[str]] = None, datasets: Sequence[str] = ("mosi",),
        seeds: Optional[Sequence[int]] = None, rates: Optional[Sequence[float]] = None, *, protocol: str = "intra",
        drop_rates: Optional[Sequence[float]] = None,
        rates_per_modality: Optional[Sequence] = None, data_root=None, pretrained=None, device: str = "auto",
        out="results", name: Optional[str] = None, quick: bool = False, eval_only: bool = False, config_file=None,
        overrides: Optional[Mapping] = None, with_reported: bool = False, progress: bool = True,
        say=None) -> BenchmarkResult:
    """Run (or resume) the robustness benchmark and write its reports; see the module docstring.

    Args:
        models, datasets, seeds: the grid (defaults: ``dar misa self_mm`` -- ``dar misa`` with
            ``quick`` --, ``mosi``, seeds 1111 1112 1113).
        rates: test missing rates of the intra-modal protocol (default 0.0 .. 0.9).
        protocol: ``intra`` (Table 1), ``inter`` (modality subsets + random whole-modality drop
            at ``drop_rates``, default 0.1 .. 0.7) or ``all``.
        rates_per_modality: per-modality settings replacing ``rates``, as dicts
            ``{"text": .., "audio": .., "vision": ..}`` or tokens like ``["l=0.2", "a=0.5", "v=0.5"]``.
        data_root: MMSA dataset root; None -> ``$DAR_MMSA_DATA_ROOT`` or synthetic data.
        pretrained: local BERT directory (None -> config / ``$DAR_MMSA_PRETRAINED``; a tiny random
            BERT with ``quick``).
        out, name: outputs go to ``<out>/<name>/`` (default name from ``quick`` and the data).
        quick: small synthetic data, ``max_epochs`` 2, batch size 16 (for CI and the README).
        eval_only: evaluate saved checkpoints only (error if one is missing).
        config_file: MMSA-format config (default ``dar_mmsa.config.default_config_file()``).
        overrides: config keys to override for every run (part of the training config hash).
        with_reported: add the paper's reported rows to ``table1.tex``.
        say: where one-line messages go (default: stderr).

    Raises ``DarMmsaError`` (one line) for any bad input, before anything is trained.
    """
    say = say or (lambda message: print(message, file=sys.stderr))
    if quick:
        models = models or QUICK_MODELS
        seeds = seeds or QUICK_SEEDS
    models, datasets = _models(models or DEFAULT_MODELS), tuple(dict.fromkeys(check_dataset(d) for d in datasets))
    if not datasets:
        raise ConfigError(f"no datasets given: choose from {', '.join(DATASETS)}")
    if rates_per_modality and rates is not None:
        raise ConfigError("give --rates or --rates-per-modality, not both "
                          "(per-modality settings replace the rate grid)")
    if rates_per_modality and protocol == "inter":
        raise ConfigError("--rates-per-modality belongs to the intra-modal protocol: use --protocol intra or all")
    if drop_rates is not None and protocol == "intra":
        raise ConfigError("--drop-rates belongs to the inter-modal protocol: use --protocol inter or all")
    settings_per_modality = None
    if rates_per_modality:
        tokens = [t for t in rates_per_modality if isinstance(t, str)]
        settings_per_modality = parse_rates_per_modality(tokens) + [dict(t) for t in rates_per_modality
                                                                    if not isinstance(t, str)]
    conditions = conditions_for(protocol, DEFAULT_RATES if rates is None else rates,
                                DEFAULT_DROP_RATES if drop_rates is None else drop_rates, settings_per_modality)
    overrides = dict(QUICK_OVERRIDES if quick else {}, **(overrides or {}))
    config_file = Path(config_file) if config_file else None
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} not found: pass an existing --config or omit it")
    synthetic = (data_root is None and not os.environ.get(ENV_DATA_ROOT)) or \
        _is_synthetic(data_root or os.environ[ENV_DATA_ROOT])
    store = ResultStore(Path(out) / (name or _default_name(quick, synthetic)))
    settings = _Settings(models, datasets, _seeds(seeds or DEFAULT_SEEDS), tuple(conditions),
                         runner.resolve_device(device), config_file, overrides, store)
    settings.store.check_writable()
    with settings.store.lock():
        synthetic_scale = _prepare_inputs(settings, data_root=data_root, pretrained=pretrained, quick=quick)
        planned = _plan(settings)
        if synthetic_scale is not None:
            _write_synthetic(settings.data_root, settings.datasets, synthetic_scale)
        _check_data(planned)
        _check_store(settings, planned, eval_only)
        trained, evaluated, failures = _execute(planned, settings, progress=progress, say=say)
        result = _write_reports(settings, planned, with_reported=with_reported, say=say)
    result.trained, result.evaluated, result.failures = trained, evaluated, failures
    result.summary = summary_text(result, settings.seeds)
    write_atomic(result.root / "summary.txt", (result.summary + "\n").encode())
    return result


__all__ = ["run", "BenchmarkResult", "summary_text"]
