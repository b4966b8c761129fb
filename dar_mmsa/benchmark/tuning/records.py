"""Trial records: one JSON file per finished trial, written atomically like every stored result.

Layout under the results folder: ``tuning/trials/<model>-<dataset>/<trial>.json`` (``<trial>``:
the trial's number, zero-padded), the Optuna journal ``tuning/optuna.journal`` (serial backend)
and Ray Tune's experiment folders ``tuning/ray/<model>-<dataset>/`` (Ray backend).
"""
from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import List

from ..store import read_json, write_json
from .search import SearchDefinition
from .trial import TrialOutcome

TUNING_DIR = "tuning"


def tuning_dir(root) -> Path:
    return Path(root) / TUNING_DIR


def trials_dir(root, definition: SearchDefinition) -> Path:
    return tuning_dir(root) / "trials" / definition.key


def checkpoint_path(root, definition: SearchDefinition, trial: int) -> Path:
    return tuning_dir(root) / "checkpoints" / definition.key / f"{trial:05d}.pth"


def _finite(value):
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def write_trial(root, definition: SearchDefinition, trial: int, outcome: TrialOutcome, backend: str) -> dict:
    record = {
        "model": definition.model, "dataset": definition.dataset, "trial": trial, "backend": backend,
        "params": outcome.params, "state": outcome.state,
        "values": {rate: _finite(v) for rate, v in outcome.values.items()},
        "objective": _finite(outcome.objective), "epochs": outcome.epochs,
        "intermediate": [_finite(v) for v in outcome.intermediate], "wall_time_s": outcome.wall_time_s,
        "budget": definition.budget(),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(trials_dir(root, definition) / f"{trial:05d}.json", record)
    return record


def read_trials(root, definition: SearchDefinition) -> List[dict]:
    """The stored trial records of one search, in trial order."""
    folder = trials_dir(root, definition)
    records = [read_json(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted((r for r in records if r is not None), key=lambda r: r["trial"])
