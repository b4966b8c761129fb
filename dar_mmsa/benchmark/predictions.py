"""Per-sample predictions of one evaluation: one compressed ``.npz`` per (run, condition).

``store/runs/<run_id>/predictions/<condition>.npz`` holds equal-length columns ``index`` (row of the
test split), ``id`` (MMSA's sample id), ``label`` and ``prediction`` (float32, exactly the values
MMSA's ``MetricsTop`` was given), plus ``P_l`` ... ``S_v`` for models that expose expert
importances. Written atomically (temporary file + fsync + ``os.replace``) before the evaluation's
JSON record, which names it (``predictions_file``, relative to the results folder).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Dict, Mapping, Optional

import numpy as np

from .store import ResultStore, write_atomic

COLUMNS = ("index", "id", "label", "prediction")
EXPERTS = ("P_l", "P_a", "P_v", "S_l", "S_a", "S_v")  # DERL-style's expert importances, when stored


def predictions_path(store: ResultStore, run_id: str, condition_key: str) -> Path:
    return store.run_dir(run_id) / "predictions" / f"{condition_key}.npz"


def to_npz_bytes(columns: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in columns.items()})
    return buffer.getvalue()


def write_predictions(store: ResultStore, run_id: str, condition_key: str, columns: Mapping[str, np.ndarray]) -> str:
    """Store the columns; returns the file's path relative to the results folder."""
    path = predictions_path(store, run_id, condition_key)
    write_atomic(path, to_npz_bytes(columns))
    return str(path.relative_to(store.root))


def read_predictions(path) -> Optional[Dict[str, np.ndarray]]:
    """The stored columns, or None if the file is missing or unreadable."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            columns = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError):
        return None
    return columns if all(c in columns for c in COLUMNS) else None


def record_predictions(store: ResultStore, record: Mapping) -> Optional[Dict[str, np.ndarray]]:
    """The predictions an evaluation record names (None for records made before they were stored)."""
    name = record.get("predictions_file")
    return None if not name else read_predictions(store.root / name)
