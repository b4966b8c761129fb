"""How each model's score decays with the test missing rate: pure summaries of a metric-vs-rate curve.

Every robustness column reads one way: higher = more robust. As MultiBench does for its
lower-is-better tasks (Liang et al., "MultiBench: Multiscale Benchmarks for Multimodal
Representation Learning", NeurIPS 2021 Datasets and Benchmarks track, ``eval_scripts/robustness.py``),
a lower-is-better metric (MAE) is negated first (``sign`` -1); the columns computed on the oriented
curve end in ``_oriented``.

* ``auc_oriented``: trapezoidal area under the oriented curve (mean over seeds) against the rate:
  MultiBench's relative robustness before its normalisation (their code sums trapezoids of width
  0.1 over the noise levels; we use the actual rate spacing, the same on the default grid).
* ``normalised_auc_oriented``: that area divided by the rate range: the curve's mean height, in the
  metric's units (negated for MAE), comparable across rate grids.
* ``relative_robustness_minmax``: MultiBench's reported relative robustness: ``auc_oriented``
  max-min normalised across the models of the table (per dataset and metric): 1 for the most
  robust model, 0 for the least; it changes when models are added.
* ``effective_robustness_sum_oriented`` (MultiBench, after Taori et al. 2020): ``sum_r (f(r) -
  beta(r))`` over the grid's rates with ``beta(r) = b(r) + f(r0) - b(r0)``: the baseline's curve
  ``b`` shifted to start at the model's clean score, so a model is credited only for decaying more
  slowly than the baseline (0 for the baseline itself); ``effective_robustness_mean_oriented`` is
  the same divided by the number of rates, so it does not grow with the grid.
* ``breakdown_rate``: the first rate at which the metric falls below ``fraction`` x its r = 0
  value (rises above ``value0 / fraction`` for MAE), linearly interpolated between the two
  surrounding grid rates; NaN when it never does within the grid (the most robust outcome).

:func:`robustness_lead_rows` gives paired bootstrap leads of a reference over another model in
``normalised_auc_oriented`` and ``effective_robustness_mean_oriented`` from the draws of
``significance.bootstrap_curves`` (the draws of the significance tests).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Set, Tuple

import numpy as np
import pandas as pd

from .aggregate import LOWER_IS_BETTER, METRICS, counterpart
from .significance import DEFAULT_LEVEL, summarise_lead

DEFAULT_FRACTION = 0.9
ROBUSTNESS_COLUMNS = ("clean", "sign", "auc_oriented", "normalised_auc_oriented", "relative_robustness_minmax",
                      "effective_robustness_mean_oriented", "effective_robustness_sum_oriented", "breakdown_rate")
LEAD_KINDS = {"auc": "normalised_auc_oriented", "er": "effective_robustness_mean_oriented"}
LEAD_FIELDS = ("lead", "lead_low", "lead_high", "p_value", "p_value_mc_se", "p_holm", "q_bh", "p_holm_primary",
               "significant")


def sign(metric: str) -> float:
    """+1, or -1 for a lower-is-better metric: ``sign * value`` is higher when better."""
    return -1.0 if metric in LOWER_IS_BETTER else 1.0


def _curve(rates, values):
    """Rates ascending and the values (..., R) in that order."""
    rates, values = np.asarray(rates, dtype=float), np.asarray(values, dtype=float)
    if rates.ndim != 1 or values.shape[-1:] != rates.shape or len(rates) < 2:
        raise ValueError(f"need at least two (rate, value) points of equal length, got {rates.shape} and {values.shape}")
    order = np.argsort(rates)
    return rates[order], values[..., order]


def _scalar(value):
    return float(value) if np.ndim(value) == 0 else value


def auc(rates: Sequence[float], values) -> float:
    """Trapezoidal area under the metric-vs-rate curve (``values`` (..., R): one area per curve)."""
    r, v = _curve(rates, values)
    return _scalar(np.sum((v[..., 1:] + v[..., :-1]) * np.diff(r) / 2, axis=-1))


def normalised_auc(rates: Sequence[float], values) -> float:
    """The area divided by the rate range: the mean height of the curve."""
    r, _ = _curve(rates, values)
    return _scalar(np.asarray(auc(rates, values)) / float(r[-1] - r[0]))


def effective_robustness(values, baseline) -> float:
    """MultiBench's effective robustness (a sum over the rates) of curves against a baseline curve on
    the same rates, first = clean (last axis: rates)."""
    f, b = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    if f.shape[-1:] != b.shape[-1:]:
        raise ValueError(f"the curve and its baseline need the same rates, got {f.shape} and {b.shape}")
    return _scalar(np.sum((f - f[..., :1]) - (b - b[..., :1]), axis=-1))  # = sum(f - beta); 0 for the baseline


def effective_robustness_mean(values, baseline) -> float:
    """Effective robustness divided by the number of rates: the mean lead over the shifted baseline."""
    return _scalar(np.asarray(effective_robustness(values, baseline)) / np.shape(values)[-1])


def minmax(values: Sequence[float]) -> np.ndarray:
    """MultiBench's max-min normalisation across methods (NaN when all are equal or undefined)."""
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    if not len(finite) or finite.max() == finite.min():
        return np.full(v.shape, np.nan)
    return (v - finite.min()) / (finite.max() - finite.min())


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
    robustness (None: those columns are empty)."""
    frame = per_cond[(per_cond["protocol"] == "intra") & per_cond["rate"].notna()]
    rows = []
    for dataset, block in frame.groupby("dataset", sort=False):
        base = block[block["model"] == baseline].sort_values("rate") if baseline else block.iloc[:0]
        for model, group in block.groupby("model", sort=False):
            group = group.sort_values("rate")
            rates = group["rate"].astype(float).to_numpy()
            if len(rates) < 2:
                continue
            for metric in dict.fromkeys(counterpart(m, dataset) for m in metrics):  # CH-SIMS: its own metrics
                values = group[f"{metric}_mean"].astype(float).to_numpy()
                oriented = sign(metric) * values
                row = {"data": group["data"].iloc[0], "dataset": dataset, "model": model,
                       "display_name": group["display_name"].iloc[0], "metric": metric,
                       "rates": " ".join(f"{r:g}" for r in rates), "clean": float(values[0]), "sign": sign(metric),
                       "auc_oriented": auc(rates, oriented), "normalised_auc_oriented": normalised_auc(rates, oriented)}
                same_rates = len(base) and np.array_equal(base["rate"].astype(float).to_numpy(), rates)
                base_oriented = sign(metric) * base[f"{metric}_mean"].astype(float).to_numpy()
                row["effective_robustness_mean_oriented"] = (effective_robustness_mean(oriented, base_oriented)
                                                             if same_rates else None)
                row["effective_robustness_sum_oriented"] = (effective_robustness(oriented, base_oriented)
                                                            if same_rates else None)
                row["baseline"] = baseline if same_rates else None
                row["breakdown_rate"] = breakdown_rate(rates, values, fraction, metric in LOWER_IS_BETTER)
                row["fraction"] = fraction
                rows.append(row)
    columns = ["data", "dataset", "model", "display_name", "metric", "rates", *ROBUSTNESS_COLUMNS, "baseline",
               "fraction"]
    table = pd.DataFrame(rows, columns=columns)
    for _, positions in table.groupby(["dataset", "metric"], sort=False).indices.items():
        table.loc[table.index[positions], "relative_robustness_minmax"] = minmax(
            table["auc_oriented"].to_numpy(dtype=float)[positions])
    return table


def robustness_lead_rows(metric: str, rates: Sequence[float], reference_point, other_point, reference_draws,
                         other_draws, level: float = DEFAULT_LEVEL) -> List[dict]:
    """Leads of the reference over the other model (positive = reference more robust) in
    normalised oriented AUC (``kind`` auc) and mean effective robustness (``kind`` er), from point
    curves (R,) and the same draws of both (B, R). The effective-robustness lead does not depend on
    the baseline: it is the reference's effective robustness with the other model as baseline."""
    s = sign(metric)
    ref_p, oth_p = s * np.asarray(reference_point, float), s * np.asarray(other_point, float)
    ref_d, oth_d = s * np.asarray(reference_draws, float), s * np.asarray(other_draws, float)
    rows = []
    for kind, lead in (("auc", lambda a, b: np.asarray(normalised_auc(rates, a)) - normalised_auc(rates, b)),
                       ("er", lambda a, b: np.asarray(effective_robustness_mean(_curve(rates, a)[1],
                                                                                _curve(rates, b)[1])))):
        rows.append({"metric": metric, "kind": kind, **summarise_lead(lead(ref_p, oth_p), lead(ref_d, oth_d), level)})
    return rows


def add_leads(table: pd.DataFrame, leads: Optional[pd.DataFrame]) -> pd.DataFrame:
    """``robustness_table`` with the adjusted leads of ``leads`` (one row per dataset, reference, model,
    metric, kind) as ``reference`` and ``<kind>_<field>`` columns (empty for the reference itself)."""
    out = table.copy()
    values = {}
    for lead in ([] if leads is None else leads.to_dict("records")):
        values.setdefault((lead["dataset"], lead["model"], lead["metric"]), {}).update(
            {f"{lead['kind']}_{field}": lead[field] for field in LEAD_FIELDS})
    references = {} if leads is None or not len(leads) else dict(zip(leads["dataset"], leads["reference"]))
    out["reference"] = out["dataset"].map(references)
    keys = list(zip(out["dataset"], out["model"], out["metric"]))
    for column in (f"{kind}_{field}" for kind in LEAD_KINDS for field in LEAD_FIELDS):
        out[column] = [values.get(key, {}).get(column) for key in keys]
    return out


def significant_best(table: pd.DataFrame, kind: str = "auc") -> Set[Tuple[str, str, str]]:
    """(dataset, reference, metric) where the reference leads every other model of the table on
    ``kind`` (auc or er) and each lead is significant after adjustment (``<kind>_significant``)."""
    cells = set()
    if f"{kind}_significant" not in table or "reference" not in table:
        return cells
    for (dataset, metric), block in table.groupby(["dataset", "metric"], sort=False):
        reference = block["reference"].iloc[0]
        others = block[block["model"] != reference]
        if pd.isna(reference) or reference not in set(block["model"]) or not len(others):
            continue
        leads = pd.to_numeric(others[f"{kind}_lead"], errors="coerce")
        if (others[f"{kind}_significant"].fillna(False).astype(bool) & (leads > 0)).all():
            cells.add((dataset, reference, metric))
    return cells
