"""Paired bootstrap of the difference between two models' Table 1 metrics.

Every Table 1 metric of MMSA's ``MetricsTop`` (regression, MOSI/MOSEI) is a function of sums over
test samples of a few per-sample quantities (:data:`QUANTITIES`): correct rounded class (Acc-7,
Acc-5), the confusion counts of the Has0 / Non0 binary tasks (Acc-2 and the support-weighted F1),
absolute error (MAE) and the moments of (prediction, label) (Pearson Corr). So a bootstrap draw is a
vector of sample multiplicities ``w`` (N,), and every metric of every model, seed and rate under
that draw comes from one matrix product ``w @ X`` -- no per-draw Python loop.

The bootstrap is *paired*: each draw resamples the test samples (with replacement, the same draw
for both models, every seed and every rate: the test set is shared) and the training seeds (with
replacement, the same draw for both models: models trained with the same seed saw the same
corruption masks). For one draw, a model's value at a rate is the mean over the drawn seeds of the
metric on the drawn samples, and its Table 1 value is the mean of those over the rates, as
``aggregate.table1`` averages. The lead of the reference over the other model is
``reference - other`` (``other - reference`` for MAE, lower is better): positive = the reference is
better. The 95 % interval is the 2.5-97.5 % percentile interval of the draws' leads; the lead is
significant when the interval excludes 0. Draws come from ``numpy.random.default_rng(seed)``: the
same store gives the same intervals. Metrics here are not rounded (MMSA rounds to 4 decimals).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import pandas as pd

from .aggregate import LOWER_IS_BETTER, METRICS

QUANTITIES = ("n", "acc7", "acc5", "has0_tp_pos", "has0_tp_neg", "has0_true_pos", "has0_pred_pos", "non0",
              "non0_tp_pos", "non0_tp_neg", "non0_true_pos", "non0_pred_pos", "abs_err", "p", "t", "pp", "tt", "pt")
DEFAULT_BOOTSTRAPS = 1000
DEFAULT_BOOTSTRAP_SEED = 0


def sample_quantities(prediction: np.ndarray, label: np.ndarray) -> np.ndarray:
    """(N, len(QUANTITIES)) per-sample quantities whose sums give every metric (as MMSA computes them)."""
    p = np.asarray(prediction, dtype=np.float32).reshape(-1)
    t = np.asarray(label, dtype=np.float32).reshape(-1)
    acc7 = np.round(np.clip(p, -3.0, 3.0)) == np.round(np.clip(t, -3.0, 3.0))
    acc5 = np.round(np.clip(p, -2.0, 2.0)) == np.round(np.clip(t, -2.0, 2.0))
    nz = t != 0
    p64, t64 = p.astype(np.float64), t.astype(np.float64)
    columns = [np.ones_like(p64), acc7, acc5, (t >= 0) & (p >= 0), (t < 0) & (p < 0), t >= 0, p >= 0, nz,
               nz & (t > 0) & (p > 0), nz & (t < 0) & (p <= 0), nz & (t > 0), nz & (p > 0),
               np.abs(p - t).astype(np.float64), p64, t64, p64 * p64, t64 * t64, p64 * t64]
    return np.stack([np.asarray(c, dtype=np.float64) for c in columns], axis=1)


def _ratio(num, den):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _weighted_f1(n, tp_pos, tp_neg, true_pos, pred_pos):
    """sklearn's f1_score(average="weighted") for two classes from counts (a class's F1 is 0 when undefined)."""
    true_neg, pred_neg = n - true_pos, n - pred_pos
    f1_pos = np.nan_to_num(_ratio(2 * tp_pos, true_pos + pred_pos))
    f1_neg = np.nan_to_num(_ratio(2 * tp_neg, true_neg + pred_neg))
    return _ratio(true_pos * f1_pos + true_neg * f1_neg, n)


def metrics_from_sums(sums: np.ndarray) -> Dict[str, np.ndarray]:
    """Every Table 1 metric from (..., len(QUANTITIES)) sums of :func:`sample_quantities` rows."""
    s = {name: sums[..., i] for i, name in enumerate(QUANTITIES)}
    n = s["n"]
    with np.errstate(divide="ignore", invalid="ignore"):
        var_p, var_t = n * s["pp"] - s["p"] ** 2, n * s["tt"] - s["t"] ** 2
        corr = (n * s["pt"] - s["p"] * s["t"]) / np.sqrt(np.clip(var_p, 0, None) * np.clip(var_t, 0, None))
    return {
        "Mult_acc_7": _ratio(s["acc7"], n), "Mult_acc_5": _ratio(s["acc5"], n),
        "Has0_acc_2": _ratio(s["has0_tp_pos"] + s["has0_tp_neg"], n),
        "Non0_acc_2": _ratio(s["non0_tp_pos"] + s["non0_tp_neg"], s["non0"]),
        "Has0_F1_score": _weighted_f1(n, s["has0_tp_pos"], s["has0_tp_neg"], s["has0_true_pos"], s["has0_pred_pos"]),
        "Non0_F1_score": _weighted_f1(s["non0"], s["non0_tp_pos"], s["non0_tp_neg"], s["non0_true_pos"],
                                      s["non0_pred_pos"]),
        "MAE": _ratio(s["abs_err"], n), "Corr": corr,
    }


def metrics(prediction, label) -> Dict[str, float]:
    """The Table 1 metrics of one prediction vector (unrounded MMSA values)."""
    return {k: float(v) for k, v in metrics_from_sums(sample_quantities(prediction, label).sum(0)).items()}


def draws(n_samples: int, n_seeds: int, n_boot: int = DEFAULT_BOOTSTRAPS, seed: int = DEFAULT_BOOTSTRAP_SEED,
          resample_seeds: bool = True):
    """Sample multiplicities (n_boot, n_samples) and seed multiplicities (n_boot, n_seeds), seeded."""
    rng = np.random.default_rng(seed)
    samples = rng.multinomial(n_samples, np.full(n_samples, 1.0 / n_samples), size=n_boot).astype(np.float64)
    if resample_seeds and n_seeds > 1:
        seeds = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot).astype(np.float64)
    else:
        seeds = np.ones((n_boot, n_seeds))
    return samples, seeds


def model_values(predictions: np.ndarray, label: np.ndarray, samples: Optional[np.ndarray] = None,
                 seeds: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """Per-rate values of each metric, mean over seeds: (n_rates,) without draws, (n_boot, n_rates) with.

    ``predictions``: (n_seeds, n_rates, N) predictions of one model on the same N test samples.
    """
    predictions = np.asarray(predictions)
    n_seeds, n_rates, n = predictions.shape
    x = np.stack([sample_quantities(predictions[s, r], label) for s in range(n_seeds) for r in range(n_rates)])
    if samples is None:
        per = metrics_from_sums(x.sum(1).reshape(n_seeds, n_rates, -1))  # (S, R)
        return {k: np.nanmean(v, axis=0) if n_seeds > 1 else v[0] for k, v in per.items()}
    k = x.shape[2]  # one BLAS product for every seed, rate and quantity
    sums = (samples @ x.transpose(1, 0, 2).reshape(n, -1)).reshape(len(samples), n_seeds, n_rates, k)
    out = {}
    for k, v in metrics_from_sums(sums).items():  # (B, S, R)
        out[k] = np.einsum("bsr,bs->br", np.nan_to_num(v), seeds) / seeds.sum(1, keepdims=True)
    return out


def _lead(metric: str, reference, other):
    return other - reference if metric in LOWER_IS_BETTER else reference - other


def paired_bootstrap(label: np.ndarray, reference: np.ndarray, other: np.ndarray, *,
                     n_boot: int = DEFAULT_BOOTSTRAPS, seed: int = DEFAULT_BOOTSTRAP_SEED,
                     resample_seeds: bool = True, level: float = 0.95,
                     metrics_: Sequence[str] = METRICS) -> pd.DataFrame:
    """Lead of ``reference`` over ``other`` per rate (``rate_index`` 0..R-1) and on the average over
    rates (``rate_index`` -1), with a percentile interval.

    ``reference``, ``other``: (n_seeds, n_rates, N) predictions (same seeds, rates and samples);
    ``label``: (N,). Columns: rate_index, metric, reference_value, model_value, lead, lead_low,
    lead_high, p_value (two-sided bootstrap), significant.
    """
    reference, other = np.asarray(reference), np.asarray(other)
    if reference.shape != other.shape or reference.ndim != 3 or reference.shape[2] != len(label):
        raise ValueError(f"predictions must be (seeds, rates, samples) of the same shape, got {reference.shape} "
                         f"and {other.shape} for {len(label)} labels")
    n_seeds, n_rates, n = reference.shape
    samples, seed_weights = draws(n, n_seeds, n_boot, seed, resample_seeds)
    point_ref, point_other = model_values(reference, label), model_values(other, label)
    boot_ref = model_values(reference, label, samples, seed_weights)
    boot_other = model_values(other, label, samples, seed_weights)
    tail = (1 - level) / 2
    rows = []
    for metric in metrics_:
        cases = [(r, point_ref[metric][r], point_other[metric][r], boot_ref[metric][:, r], boot_other[metric][:, r])
                 for r in range(n_rates)]
        cases.append((-1, np.mean(point_ref[metric]), np.mean(point_other[metric]), boot_ref[metric].mean(1),
                      boot_other[metric].mean(1)))
        for r, ref_value, other_value, ref_draws, other_draws in cases:
            leads = _lead(metric, ref_draws, other_draws)
            low, high = np.quantile(leads, [tail, 1 - tail])
            p_value = min(1.0, 2 * min(np.mean(leads <= 0), np.mean(leads >= 0)))
            rows.append({"rate_index": r, "metric": metric, "reference_value": float(ref_value),
                         "model_value": float(other_value), "lead": float(_lead(metric, ref_value, other_value)),
                         "lead_low": float(low), "lead_high": float(high), "p_value": float(p_value),
                         "significant": bool(low > 0 or high < 0)})
    return pd.DataFrame(rows)
