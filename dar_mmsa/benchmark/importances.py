"""Expert importances of the models that expose them (DERL-style): the mean of each expert's weight
over every stored test sample of every seed, per (model, dataset, condition), read from the
per-sample predictions; written as ``importance_means.csv``."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .aggregate import ordered_rows
from .predictions import EXPERTS, record_predictions
from .store import ResultStore

IMPORTANCE_COLUMNS = ("model", "dataset", "condition", "samples", *EXPERTS)


def importance_means(store: ResultStore, records: Sequence[Mapping], model_order: Sequence[str],
                     condition_order: Sequence[str]) -> pd.DataFrame:
    """One row per (model, dataset, condition) whose predictions carry importances, in the order of
    the other reports (dataset, ``model_order``, ``condition_order``); empty when no model exposes them."""
    stacked: dict = {}
    for record in records:
        columns = record_predictions(store, record)
        if columns is None or not all(e in columns for e in EXPERTS):
            continue
        key = (record["model"], record["dataset"], record["condition"]["key"])
        stacked.setdefault(key, []).append(np.stack([columns[e] for e in EXPERTS], axis=1).astype(np.float64))
    rows = []
    for (model, dataset, condition), blocks in stacked.items():
        weights = np.concatenate(blocks)
        rows.append({"model": model, "dataset": dataset, "condition": condition, "samples": len(weights),
                     **dict(zip(EXPERTS, weights.mean(axis=0).round(4)))})
    return ordered_rows(pd.DataFrame(rows, columns=list(IMPORTANCE_COLUMNS)), model_order, condition_order)
