"""Did a model learn? Three conditions on complete input (missing rate 0), one summary line per model.

A model counts as *learned* on a dataset when, at r = 0 and averaged over its seeds:

- its MAE is below the mean predictor's: the MAE on the test split of always predicting the mean
  of the training labels (recorded with each training, :func:`mean_predictor`);
- its two finest accuracies differ (Acc-5 != Acc-7; CH-SIMS: Acc-3 != Acc-5): when every
  prediction falls in one bin, as an untrained model's do near 0, the two are equal;
- its Corr is above :data:`MIN_CORR`.
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

MIN_CORR = 0.2
# the two finest class accuracies of each dataset's metrics (CH-SIMS has no Acc-7)
FINE_ACCURACIES = {"sims": ("Mult_acc_5", "Mult_acc_3")}
DEFAULT_FINE_ACCURACIES = ("Mult_acc_7", "Mult_acc_5")
ACCURACY_NAMES = {"Mult_acc_7": "Acc-7", "Mult_acc_5": "Acc-5", "Mult_acc_3": "Acc-3"}


def mean_predictor(train_labels, test_labels) -> dict:
    """The training-label mean and the test MAE of predicting it for every test sample."""
    train = np.asarray(train_labels, dtype=np.float64).reshape(-1)
    test = np.asarray(test_labels, dtype=np.float64).reshape(-1)
    mean = float(train.mean())
    return {"train_label_mean": mean, "test_mae": float(np.abs(test - mean).mean())}


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def learned_failures(mae, mean_predictor_mae, finer_acc, coarser_acc, corr, *, min_corr: float = MIN_CORR) -> List[str]:
    """The conditions of "learned" a model does not meet (empty: it learned); an unknown value fails."""
    failures = []
    if _missing(mean_predictor_mae):
        failures.append("no mean predictor recorded")
    elif _missing(mae) or not mae < mean_predictor_mae:
        failures.append("MAE not below the mean predictor's")
    if _missing(finer_acc) or _missing(coarser_acc) or finer_acc == coarser_acc:
        failures.append("the two finest accuracies are equal")
    if _missing(corr) or not corr > min_corr:
        failures.append(f"Corr not above {min_corr:g}")
    return failures


def mean_predictor_maes(trainings: Sequence[Mapping]) -> Dict[Tuple[str, str], Optional[float]]:
    """(dataset, model) -> mean predictor MAE of its runs' training records (None if one lacks it)."""
    values: Dict[Tuple[str, str], List[Optional[float]]] = {}
    for record in trainings:
        entry = record.get("mean_predictor") or {}
        values.setdefault((record["dataset"], record["model"]), []).append(entry.get("test_mae"))
    return {key: None if any(v is None for v in vs) else float(np.mean(vs)) for key, vs in values.items()}


def _pct(value) -> str:
    return "--" if _missing(value) else f"{100 * value:.2f}"


def _num(value) -> str:
    return "--" if _missing(value) else f"{value:.3f}"


def learned_lines(per_condition: pd.DataFrame, baselines: Mapping[Tuple[str, str], Optional[float]]) -> List[str]:
    """The summary's verdict, one line per (dataset, model) of ``per_condition`` (means over seeds)."""
    if per_condition is None or not len(per_condition):
        return []
    lines = ["", f"Learned? At r = 0, mean over seeds: MAE below the mean predictor's (training-label mean), "
                 f"the two finest accuracies differ, Corr > {MIN_CORR:g}"]
    for (dataset, model, display), group in per_condition.groupby(["dataset", "model", "display_name"], sort=False):
        clean = group[(group["protocol"] == "intra") & (group["rate"].astype(float) == 0.0)]
        head = f"{dataset:8} {display[:32]:32}"
        if not len(clean):
            lines.append(f"{head} not checked: no evaluation at missing rate 0 (add 0 to --rates)")
            continue
        row = clean.iloc[0]
        finer, coarser = FINE_ACCURACIES.get(dataset, DEFAULT_FINE_ACCURACIES)
        mae, acc_f, acc_c, corr = (row.get(f"{m}_mean") for m in ("MAE", finer, coarser, "Corr"))
        baseline = baselines.get((dataset, model))
        failures = learned_failures(mae, baseline, acc_f, acc_c, corr)
        numbers = (f"MAE {_num(mae)} (mean predictor {_num(baseline)}), "
                   f"{ACCURACY_NAMES[coarser]} {_pct(acc_c)} / {ACCURACY_NAMES[finer]} {_pct(acc_f)}, Corr {_num(corr)}")
        verdict = "learned" if not failures else "NOT learned (" + "; ".join(failures) + ")"
        lines.append(f"{head} {verdict}: {numbers}")
    return lines
