"""How each model's score decays with the test missing rate: pure summaries of a metric-vs-rate curve.

* ``auc``: trapezoidal area under the curve of the metric (mean over seeds) against the rate.
  MultiBench's *relative robustness* (Liang et al., "MultiBench: Multiscale Benchmarks for
  Multimodal Representation Learning", NeurIPS 2021 Datasets and Benchmarks track) is this area
  (their code sums trapezoids of width 0.1 over the noise levels; we use the actual rate spacing,
  which is the same on the default grid 0.0, 0.1, ..., 0.9).
* ``normalised_auc``: the area divided by the rate range (max - min): the curve's mean height, in
  the metric's units, comparable across rate grids.
* ``effective_robustness`` (MultiBench, after Taori et al. 2020): ``sum_r (f(r) - beta(r))`` with
  ``beta(r) = b(r) + f(r0) - b(r0)``: the baseline's curve ``b`` shifted to start at the model's
  clean score, so a model is credited only for decaying more slowly than the baseline (MultiBench
  uses late fusion as the baseline; here it is a chosen model, 0 for the baseline itself). Summed
  over the rates as MultiBench does (not normalised); for MAE a positive value means *worse*.
* ``breakdown_rate``: the first rate at which the metric falls below ``fraction`` x its r = 0
  value (rises above ``value0 / fraction`` for MAE), linearly interpolated between the two
  surrounding grid rates; NaN when it never does within the grid.

MultiBench also max-min normalises its scores across the methods of a task; we do not (the scores
stay in the metric's units).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd

from .aggregate import LOWER_IS_BETTER, METRICS

DEFAULT_FRACTION = 0.9
ROBUSTNESS_COLUMNS = ("clean", "auc", "normalised_auc", "relative_robustness", "effective_robustness",
                      "breakdown_rate")


def _curve(rates, values):
    rates, values = np.asarray(rates, dtype=float), np.asarray(values, dtype=float)
    if rates.shape != values.shape or rates.ndim != 1 or len(rates) < 2:
        raise ValueError(f"need at least two (rate, value) points of equal length, got {rates.shape} and {values.shape}")
    order = np.argsort(rates)
    return rates[order], values[order]


def auc(rates: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoidal area under the metric-vs-rate curve (MultiBench's relative robustness)."""
    r, v = _curve(rates, values)
    return float(np.sum((v[1:] + v[:-1]) * np.diff(r) / 2))


def normalised_auc(rates: Sequence[float], values: Sequence[float]) -> float:
    """The area divided by the rate range: the mean height of the curve."""
    r, _ = _curve(rates, values)
    return auc(rates, values) / float(r[-1] - r[0])


def effective_robustness(values: Sequence[float], baseline: Sequence[float]) -> float:
    """MultiBench's effective robustness of a curve against a baseline curve on the same rates (first = clean)."""
    f, b = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    if f.shape != b.shape:
        raise ValueError(f"the curve and its baseline need the same rates, got {f.shape} and {b.shape}")
    return float(np.sum((f - f[0]) - (b - b[0])))  # = sum(f - beta), exactly 0 for the baseline itself


def breakdown_rate(rates: Sequence[float], values: Sequence[float], fraction: float = DEFAULT_FRACTION,
                   lower_is_better: bool = False) -> float:
    """First rate where the metric drops below ``fraction`` x its value at the lowest rate (interpolated)."""
    r, v = _curve(rates, values)
    if lower_is_better:  # MAE: a rise above value0 / fraction
        threshold, bad = v[0] / fraction, v > v[0] / fraction
    else:
        threshold, bad = v[0] * fraction, v < v[0] * fraction
    hits = np.flatnonzero(bad)
    if not len(hits):
        return float("nan")
    i = int(hits[0])
    if i == 0:
        return float(r[0])
    return float(r[i - 1] + (threshold - v[i - 1]) * (r[i] - r[i - 1]) / (v[i] - v[i - 1]))


def robustness_table(per_cond: pd.DataFrame, *, baseline: Optional[str] = None, fraction: float = DEFAULT_FRACTION,
                     metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Per (dataset, model, metric): the summaries above from ``aggregate.per_condition`` rows of the
    single-rate intra-modal conditions (mean over seeds). ``baseline``: the model of effective
    robustness (None: that column is empty)."""
    frame = per_cond[(per_cond["protocol"] == "intra") & per_cond["rate"].notna()]
    rows = []
    for dataset, block in frame.groupby("dataset", sort=False):
        base = block[block["model"] == baseline].sort_values("rate") if baseline else block.iloc[:0]
        for model, group in block.groupby("model", sort=False):
            group = group.sort_values("rate")
            rates = group["rate"].astype(float).to_numpy()
            if len(rates) < 2:
                continue
            for metric in metrics:
                values = group[f"{metric}_mean"].astype(float).to_numpy()
                row = {"data": group["data"].iloc[0], "dataset": dataset, "model": model,
                       "display_name": group["display_name"].iloc[0], "metric": metric,
                       "rates": " ".join(f"{r:g}" for r in rates), "clean": float(values[0]),
                       "auc": auc(rates, values), "normalised_auc": normalised_auc(rates, values)}
                row["relative_robustness"] = row["auc"]
                same_rates = len(base) and np.array_equal(base["rate"].astype(float).to_numpy(), rates)
                row["effective_robustness"] = (effective_robustness(values, base[f"{metric}_mean"].astype(float))
                                               if same_rates else None)
                row["baseline"] = baseline if same_rates else None
                row["breakdown_rate"] = breakdown_rate(rates, values, fraction, metric in LOWER_IS_BETTER)
                row["fraction"] = fraction
                rows.append(row)
    columns = ["data", "dataset", "model", "display_name", "metric", "rates", *ROBUSTNESS_COLUMNS, "baseline",
               "fraction"]
    return pd.DataFrame(rows, columns=columns)
