"""Execute one work unit: train (if needed) and evaluate it under its pending conditions, with its
log captured in ``<out>/<name>/logs/<run_id>.log``. Every executor (``executors``: serial, Ray) runs
units through :func:`run_unit` -> :func:`execute_unit`, in whatever process it gives the unit.

Every training record and evaluation reaches the store as soon as it exists, written by the
process running the unit, which holds the run's lock meanwhile: a unit's finished evaluations are
never lost because a later one fails, and a retried unit redoes only what is not stored.

A stored checkpoint is checked (size, sha256) before it is used; a missing or damaged one is
retrained (one note) unless ``no_retrain``. A full disk or a damaged checkpoint under ``no_retrain``
(``StorageError``) stops the grid with one line instead of failing just the unit.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import gc
import io
import json
import logging
import platform
import time
import traceback
from pathlib import Path
from dataclasses import dataclass, field
from typing import List, Mapping, Optional, Tuple

import pandas as pd
import torch

from .. import runner
from ..errors import StorageError
from ..registry import our_models
from ..report.names import model_display_name
from .evaluate import corruption_buffer, evaluate, supports_importance
from .heap import trim_heap
from .learned import mean_predictor
from .predictions import write_predictions
from .plan import Settings, WorkUnit
from .grid import Condition, TrainingRun
from .disk import DiskFull, write_failure, writing
from .store import ResultStore, attempt_label, write_atomic

logger = logging.getLogger("dar_mmsa.benchmark")


def library_versions() -> dict:
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
            with writing(self.handle.name):  # a full disk names the log, not the checkpoint being trained
                self.handle.write(text)
        return len(text)

    def flush(self):
        self.handle.flush()


@contextlib.contextmanager
def run_log(path: Path):
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


class LoaderCache:
    """MMSA's loaders of one (model, dataset), shared by its seeds (the data do not depend on the seed).

    Holds one data set at a time: the previous one is freed (cycles collected) before the next loads.
    """

    CARRIED = ("seq_lens", "feature_dims", "train_samples")

    def __init__(self, num_workers: int = 0, pin_memory: bool = False):
        self.key, self.loaders, self.args = None, None, None
        self.num_workers, self.pin_memory = num_workers, pin_memory

    def clear(self):
        self.key, self.loaders, self.args = None, None, None
        gc.collect()  # trainers and loaders can hold the arrays through reference cycles
        trim_heap()

    def get(self, args):
        key = (args["model_name"], args["dataset_name"], str(args["featurePath"]), args.get("batch_size"))
        if key != self.key:
            self.clear()
            self.loaders, self.args, self.key = runner.load_data(args, self.num_workers, self.pin_memory), args, key
        else:
            for name in self.CARRIED:
                if name in self.args:
                    args[name] = self.args[name]
        return self.loaders


def _write_importance(store: ResultStore, run_id: str, key: str, columns: dict) -> Path:
    path = store.root / "importance" / run_id / f"{key}.csv"
    write_atomic(path, pd.DataFrame(columns).to_csv(index=False, float_format="%.6g").encode())
    return path


def pending_conditions(store: ResultStore, run: TrainingRun) -> List[Condition]:
    """The run's conditions without a stored evaluation of its current checkpoint (all if untrained)."""
    record = store.training(run.run_id)
    return [c for c in run.conditions
            if record is None or store.evaluation(run.run_id, c.key, record["training_id"]) is None]


def usable_training(store: ResultStore, run: TrainingRun, settings: Settings, note) -> Optional[dict]:
    """The run's training record if its checkpoint can be used; None (after one ``note``) if it must
    be retrained; StorageError if it must be but ``no_retrain`` forbids it."""
    record = store.training(run.run_id)
    problem = None if record is None else store.checkpoint_problem(run.run_id, record)
    if problem is None:
        return record
    where = store.checkpoint(run.run_id)
    if settings.no_retrain:
        raise StorageError(f"the checkpoint {where} of {run.title} {problem} and --no-retrain (or --eval-only) "
                           f"forbids retraining it: remove the run folder {store.run_dir(run.run_id)} and rerun "
                           f"without that option to train it again")
    note(f"note: the checkpoint {where} of {run.title} {problem}: retraining it (its stored evaluations are kept "
         f"if it comes out with the same weights, as training does on CPU)")
    return None


def execute_unit(p: WorkUnit, settings: Settings, loaders_cache: LoaderCache, versions: dict,
                 status, note=lambda line: None) -> Tuple[int, int]:
    """Train (if needed) and evaluate one run under its pending conditions; returns (trained, evaluated).
    ``note`` receives the one-line notes meant for the console (a checkpoint retrained)."""
    store, run = settings.store, p.run
    pending = pending_conditions(store, run)
    if not pending:
        return 0, 0
    record = usable_training(store, run, settings, note)
    args, trained = p.args, 0
    loaders = loaders_cache.get(args)
    if record is None:
        status("training")
        args["model_save_path"] = store.partial_checkpoint(run.run_id)
        start = time.perf_counter()
        with writing(store.partial_checkpoint(run.run_id), remove=True):
            _, trainer = runner.train(args, loaders)
        wall = time.perf_counter() - start
        history = _json_safe(getattr(trainer, "history", None) or {})  # per-epoch results and loss terms (ours)
        record = store.commit_training(run.run_id, {
            "model": run.model, "display_name": model_display_name(run.model), "dataset": run.dataset,
            "seed": run.seed, "config_hash": run.config_hash, "args": _json_safe(args), "data": p.data,
            "device": str(settings.device), "versions": versions, "train_wall_time_s": round(wall, 3),
            "epochs": history, "finished_at": _now(),
            "mean_predictor": mean_predictor(loaders["train"].dataset.labels["M"], loaders["test"].dataset.labels["M"])})
        trained = 1
        logger.info(f"trained {run.title} in {wall:.1f}s -> {store.checkpoint(run.run_id)}")
    args["model_save_path"] = store.checkpoint(run.run_id)
    torch.manual_seed(run.seed)
    model = runner.load_checkpoint(runner.build_model(args), args)
    model.eval()
    trainer = runner.build_trainer(args)
    test_set = loaders["test"].dataset
    batch_size = settings.eval_batch_size or int(args.get("batch_size") or 32)
    data_missing = bool(args.get("data_missing"))
    with_importance = (run.model in our_models() and not data_missing and
                       supports_importance(model, torch.utils.data.DataLoader(test_set, batch_size=2), settings.device))
    buffer = corruption_buffer(test_set)  # every condition damages the test inputs into this
    for condition in pending:
        status(f"eval {condition.label}")
        torch.manual_seed(run.seed)
        start = time.perf_counter()
        result = evaluate(model, trainer, test_set, condition, run.seed, batch_size=batch_size, device=settings.device,
                          data_missing=data_missing, with_importance=with_importance, out=buffer)
        wall = time.perf_counter() - start
        importance_file = predictions_file = None
        if result.predictions is not None:
            predictions_file = write_predictions(store, run.run_id, condition.key, result.predictions)
        if result.importance is not None:
            importance_file = str(_write_importance(store, run.run_id, condition.key, result.importance)
                                  .relative_to(store.root))
        store.write_evaluation(run.run_id, condition.key, {
            "run_id": run.run_id, "training_id": record["training_id"], "model": run.model,
            "display_name": model_display_name(run.model), "dataset": run.dataset, "seed": run.seed,
            "config_hash": run.config_hash, "condition": condition.to_record(), "metrics": result.metrics,
            "n_test": result.n_samples, "eval_batch_size": batch_size, "wall_time_s": round(wall, 4),
            "realised_drop_fraction": result.realised_drop_fraction, "importance_file": importance_file,
            "predictions_file": predictions_file,
            "device": str(settings.device), "versions": versions, "data": p.data, "finished_at": _now()})
        logger.info(f"{run.title} {condition.key}: {json.dumps(result.metrics)} ({wall:.2f}s)")
    if settings.checkpoints == "drop" and store.drop_checkpoint(run.run_id):
        logger.info(f"{run.title}: every condition is stored, checkpoint dropped (--checkpoints drop)")
    return trained, len(pending)


def unit_log_path(store: ResultStore, run: TrainingRun) -> Path:
    return store.root / "logs" / f"{run.run_id}.log"


def failure_message(run: TrainingRun, cause: str, log_path: Path) -> str:
    """The one line that reports a failed unit (the grid goes on without it)."""
    return " ".join(f"error: {run.title} failed ({cause}); see {log_path}".split())


@dataclass
class UnitOutcome:
    """What running one unit did: trainings and evaluations stored, or the line reporting its failure;
    ``stop``: the line of an error that ends the whole grid (a full disk); ``notes``: lines to show."""

    trained: int = 0
    evaluated: int = 0
    failure: Optional[str] = None
    stop: Optional[str] = None
    notes: List[str] = field(default_factory=list)


def run_unit(p: WorkUnit, settings: Settings, loaders_cache: LoaderCache, versions: dict, status,
             attempt: str = "") -> UnitOutcome:
    """:func:`execute_unit` under the run's lock, its log going to the run's log file; an exception
    becomes a failed outcome (traceback in the log) instead of ending the grid, except a
    ``StorageError`` or a full disk, which becomes the outcome's ``stop`` line (no partial checkpoint left).
    ``attempt`` names this attempt's partial checkpoint and its entry as the run lock's holder
    (default: a fresh ``store.attempt_label()``)."""
    settings = dataclasses.replace(settings, store=settings.store.for_attempt(attempt or attempt_label()))
    if settings.deterministic:
        from ..training.determinism import use_deterministic_torch

        use_deterministic_torch()
        versions = dict(versions, deterministic=True)
    log_path = unit_log_path(settings.store, p.run)
    notes: List[str] = []
    try:
        with run_log(log_path) as log, settings.store.run_lock(p.run.run_id, waiting=log.write):
            try:
                trained, evaluated = execute_unit(p, settings, loaders_cache, versions, status, note=notes.append)
            except Exception:
                with contextlib.suppress(OSError):  # the log may be on the full disk
                    log.write(traceback.format_exc())
                raise
        return UnitOutcome(trained, evaluated, notes=notes)
    except StorageError as exc:
        stop = exc
    except Exception as exc:
        reason = write_failure(exc)
        if reason is None:
            return UnitOutcome(failure=failure_message(p.run, f"{type(exc).__name__}: {exc}", log_path), notes=notes)
        stop = DiskFull(getattr(exc, "filename", None) or log_path, reason)  # a write outside the store's: the log
    # release the failed write's exception and frames (torch's writer keeps its file open through them)
    # before the partial checkpoint goes and the free space is measured
    stop.__cause__ = stop.__context__ = stop.__traceback__ = None
    settings.store.partial_checkpoint(p.run.run_id).unlink(missing_ok=True)
    return UnitOutcome(stop=str(stop), notes=notes)
