"""Paired bootstrap of the difference between two models' Table 1 metrics.

Every Table 1 metric of MMSA's ``MetricsTop`` (regression, MOSI/MOSEI) is a function of sums over
test samples of a few per-sample quantities (:data:`QUANTITIES`): correct rounded class (Acc-7,
Acc-5), the confusion counts of the Has0 / Non0 binary tasks (Acc-2 and the support-weighted F1),
absolute error (MAE) and the moments of (prediction, label) (Pearson Corr). So a bootstrap draw is a
vector of sample multiplicities ``w`` (N,), and every metric of every model, seed and rate under
that draw comes from one matrix product ``w @ X`` -- no per-draw Python loop.

The bootstrap is *paired* (Koehn 2004; Berg-Kirkpatrick et al. 2012; Dror et al. 2018): each draw
resamples the test samples (with replacement, the same draw for every model, seed and rate: the test
set is shared) and the training seeds (with replacement, the same draw for both models: models
trained with the same seed saw the same corruption masks). For one draw, a model's value at a rate
is the mean over the drawn seeds of the metric on the drawn samples, and its Table 1 value is the
mean of those over the rates, as ``aggregate.table1`` averages.

A metric undefined for one seed (Corr of a constant prediction) is treated in every draw exactly as
in the point estimate: that seed is left out of the mean over seeds; a value with no defined seed,
or a Table 1 average with an undefined rate, is undefined. A comparison whose point value is
undefined gets no interval and no p-value; draws where the lead is undefined are left out and
counted (``draws_used``). Corr's variances are sums of squares of values centred on the full
sample's mean, so a constant prediction gives an exact zero (undefined) instead of rounding noise.

The lead of the reference over the other model is ``reference - other`` (``other - reference``
for MAE, lower is better): positive = the reference is better. The interval is the percentile
interval of the draws' leads; the two-sided p-value is ``2 (k + 1) / (B + 1)`` (capped at 1) with
``k`` the draws on the far side of 0, never below ``2 / (B + 1)``; ``p_value_mc_se`` is its
Monte-Carlo standard error. Draws come from ``numpy.random.default_rng``: the same store gives the
same intervals. Metrics here are not rounded (MMSA rounds to 4 decimals).
"""
from __future__ import annotations

from typing import Dict, Hashable, Iterator, Mapping, Sequence, Tuple

import numpy as np
import pandas as pd

from .aggregate import LOWER_IS_BETTER, METRICS

QUANTITIES = ("n", "acc7", "acc5", "has0_tp_pos", "has0_tp_neg", "has0_true_pos", "has0_pred_pos", "non0",
              "non0_tp_pos", "non0_tp_neg", "non0_true_pos", "non0_pred_pos", "abs_err", "dp", "dt", "dpp", "dtt",
              "dpt")
DEFAULT_BOOTSTRAPS = 10000
DEFAULT_BOOTSTRAP_SEED = 0
DEFAULT_LEVEL = 0.95
CHUNK = 500  # draws per matrix product: bounds memory at CHUNK x N weights; one stream, so any size gives the same draws
_ZERO_VARIANCE = 1e-12  # relative: a drawn variance this small against its sum of squares is a constant


def sample_quantities(prediction: np.ndarray, label: np.ndarray) -> np.ndarray:
    """(N, len(QUANTITIES)) per-sample quantities whose sums give every metric (as MMSA computes them)."""
    p = np.asarray(prediction, dtype=np.float32).reshape(-1)
    t = np.asarray(label, dtype=np.float32).reshape(-1)
    acc7 = np.round(np.clip(p, -3.0, 3.0)) == np.round(np.clip(t, -3.0, 3.0))
    acc5 = np.round(np.clip(p, -2.0, 2.0)) == np.round(np.clip(t, -2.0, 2.0))
    nz = t != 0
    p64, t64 = p.astype(np.float64), t.astype(np.float64)
    dp, dt = p64 - p64.mean(), t64 - t64.mean()  # the mean of equal float32 values is exact: a constant gives 0
    columns = [np.ones_like(p64), acc7, acc5, (t >= 0) & (p >= 0), (t < 0) & (p < 0), t >= 0, p >= 0, nz,
               nz & (t > 0) & (p > 0), nz & (t < 0) & (p <= 0), nz & (t > 0), nz & (p > 0),
               np.abs(p - t).astype(np.float64), dp, dt, dp * dp, dt * dt, dp * dt]
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


def _variance(n, total, squares):
    """n * sum(w d^2) - (sum(w d))^2, exactly 0 when it is only rounding noise."""
    var = n * squares - total ** 2
    return np.where(var > _ZERO_VARIANCE * n * squares, var, 0.0)


def metrics_from_sums(sums: np.ndarray) -> Dict[str, np.ndarray]:
    """Every Table 1 metric from (..., len(QUANTITIES)) sums of :func:`sample_quantities` rows."""
    s = {name: sums[..., i] for i, name in enumerate(QUANTITIES)}
    n = s["n"]
    var_p, var_t = _variance(n, s["dp"], s["dpp"]), _variance(n, s["dt"], s["dtt"])
    defined = (var_p > 0) & (var_t > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = (n * s["dpt"] - s["dp"] * s["dt"]) / np.sqrt(np.where(defined, var_p * var_t, 1.0))
    return {
        "Mult_acc_7": _ratio(s["acc7"], n), "Mult_acc_5": _ratio(s["acc5"], n),
        "Has0_acc_2": _ratio(s["has0_tp_pos"] + s["has0_tp_neg"], n),
        "Non0_acc_2": _ratio(s["non0_tp_pos"] + s["non0_tp_neg"], s["non0"]),
        "Has0_F1_score": _weighted_f1(n, s["has0_tp_pos"], s["has0_tp_neg"], s["has0_true_pos"], s["has0_pred_pos"]),
        "Non0_F1_score": _weighted_f1(s["non0"], s["non0_tp_pos"], s["non0_tp_neg"], s["non0_true_pos"],
                                      s["non0_pred_pos"]),
        "MAE": _ratio(s["abs_err"], n), "Corr": np.where(defined, np.clip(corr, -1.0, 1.0), np.nan),
    }


def metrics(prediction, label) -> Dict[str, float]:
    """The Table 1 metrics of one prediction vector (unrounded MMSA values)."""
    return {k: float(v) for k, v in metrics_from_sums(sample_quantities(prediction, label).sum(0)).items()}


def seed_mean(values: np.ndarray, seed_weights: np.ndarray) -> np.ndarray:
    """(B, S, R) per-seed values -> (B, R): the mean over seeds weighted by their multiplicities
    (B, S), leaving out seeds whose value is undefined; NaN where no drawn seed is defined."""
    valid = np.isfinite(values)
    num = np.einsum("bsr,bs->br", np.where(valid, values, 0.0), seed_weights)
    den = np.einsum("bsr,bs->br", valid.astype(np.float64), seed_weights)
    return _ratio(num, den)


def draw_weights(n_samples: int, n_seeds: int, n_boot: int = DEFAULT_BOOTSTRAPS, seed: int = DEFAULT_BOOTSTRAP_SEED,
                 resample_seeds: bool = True) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Chunks of (sample multiplicities (b, n_samples), seed multiplicities (b, n_seeds)), seeded.

    Samples and seeds come from two streams of ``seed``, so the sample draws are the same whatever
    the number of seeds."""
    sample_rng, seed_rng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    if resample_seeds and n_seeds > 1:
        seeds = seed_rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot).astype(np.float64)
    else:
        seeds = np.ones((n_boot, n_seeds))
    uniform = np.full(n_samples, 1.0 / n_samples)
    for start in range(0, n_boot, CHUNK):
        size = min(CHUNK, n_boot - start)
        yield sample_rng.multinomial(n_samples, uniform, size=size).astype(np.float64), seeds[start:start + size]


def _quantity_matrix(predictions: np.ndarray, label: np.ndarray) -> np.ndarray:
    """(N, S * R * K): the quantities of every seed and rate side by side."""
    n_seeds, n_rates, n = predictions.shape
    x = np.stack([sample_quantities(predictions[s, r], label) for s in range(n_seeds) for r in range(n_rates)])
    return x.transpose(1, 0, 2).reshape(n, -1)


def _curves(sums: np.ndarray, seed_weights: np.ndarray) -> Dict[str, np.ndarray]:
    return {k: seed_mean(v, seed_weights) for k, v in metrics_from_sums(sums).items()}


def bootstrap_curves(label: np.ndarray, predictions: Mapping[Hashable, np.ndarray], *,
                     n_boot: int = DEFAULT_BOOTSTRAPS, seed: int = DEFAULT_BOOTSTRAP_SEED,
                     resample_seeds: bool = True):
    """Per-rate values of every metric of several models under the same draws.

    ``predictions``: {key: (n_seeds, n_rates, N)} of one shape (seed s of every key is the same
    training seed). Returns ``(point, draws)``: {key: {metric: (n_rates,)}} and
    {key: {metric: (n_boot, n_rates)}}; the point values go through the same code with every
    multiplicity 1."""
    arrays = {k: np.asarray(v) for k, v in predictions.items()}
    shapes = {v.shape for v in arrays.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3 or next(iter(shapes))[2] != len(label):
        raise ValueError(f"predictions must be (seeds, rates, samples) of one shape, got {sorted(shapes)} for "
                         f"{len(label)} labels")
    n_seeds, n_rates, n = next(iter(shapes))
    x = {k: _quantity_matrix(v, label) for k, v in arrays.items()}
    k_q = len(QUANTITIES)
    point = {k: {m: v[0] for m, v in _curves(m_x.sum(0).reshape(1, n_seeds, n_rates, k_q),
                                             np.ones((1, n_seeds))).items()} for k, m_x in x.items()}
    draws = {k: {m: np.empty((n_boot, n_rates)) for m in METRICS} for k in x}
    start = 0
    for samples, seeds in draw_weights(n, n_seeds, n_boot, seed, resample_seeds):
        stop = start + len(samples)
        for key, m_x in x.items():  # one BLAS product per model and chunk: every seed, rate and quantity
            sums = (samples @ m_x).reshape(len(samples), n_seeds, n_rates, k_q)
            for metric, values in _curves(sums, seeds).items():
                draws[key][metric][start:stop] = values
        start = stop
    return point, draws


def oriented_lead(metric: str, reference, other):
    """reference - other, or other - reference for lower-is-better metrics: positive = reference better."""
    return other - reference if metric in LOWER_IS_BETTER else reference - other


def summarise_lead(point: float, draws: np.ndarray, level: float = DEFAULT_LEVEL) -> dict:
    """Interval, two-sided p-value and its Monte-Carlo error of one lead from its draws."""
    point = float(point)
    used = draws[np.isfinite(draws)]
    out = {"lead": point, "lead_low": np.nan, "lead_high": np.nan, "p_value": np.nan, "p_value_mc_se": np.nan,
           "draws_used": int(len(used)), "defined": bool(np.isfinite(point) and len(used))}
    if not out["defined"]:
        return out
    tail = (1 - level) / 2
    low, high = np.quantile(used, [tail, 1 - tail])
    far_side = min(int(np.sum(used <= 0)), int(np.sum(used >= 0)))
    share = (far_side + 1) / (len(used) + 1)
    out.update(lead_low=float(low), lead_high=float(high), p_value=min(1.0, 2 * share),
               p_value_mc_se=min(1.0, 2 * float(np.sqrt(share * (1 - share) / len(used)))))
    return out


def lead_rows(metric: str, reference_point, other_point, reference_draws, other_draws,
              level: float = DEFAULT_LEVEL) -> list:
    """Per rate (``rate_index`` 0..R-1) and for the average over rates (``rate_index`` -1)."""
    cases = [(r, reference_point[r], other_point[r], reference_draws[:, r], other_draws[:, r])
             for r in range(len(reference_point))]
    cases.append((-1, np.mean(reference_point), np.mean(other_point), reference_draws.mean(1), other_draws.mean(1)))
    rows = []
    for r, ref_value, other_value, ref_draws, oth_draws in cases:
        summary = summarise_lead(oriented_lead(metric, ref_value, other_value),
                                 oriented_lead(metric, ref_draws, oth_draws), level)
        rows.append({"rate_index": r, "metric": metric, "reference_value": float(ref_value),
                     "model_value": float(other_value), **summary})
    return rows


def paired_bootstrap(label: np.ndarray, reference: np.ndarray, other: np.ndarray, *,
                     n_boot: int = DEFAULT_BOOTSTRAPS, seed: int = DEFAULT_BOOTSTRAP_SEED,
                     resample_seeds: bool = True, level: float = DEFAULT_LEVEL,
                     metrics_: Sequence[str] = METRICS) -> pd.DataFrame:
    """Lead of ``reference`` over ``other`` per rate and on the average over rates, unadjusted.

    ``reference``, ``other``: (n_seeds, n_rates, N) predictions (same seeds, rates and samples);
    ``label``: (N,). Columns: rate_index, metric, reference_value, model_value, lead, lead_low,
    lead_high, p_value, p_value_mc_se, draws_used, defined."""
    reference, other = np.asarray(reference), np.asarray(other)
    if reference.shape != other.shape:
        raise ValueError(f"predictions must be (seeds, rates, samples) of the same shape, got {reference.shape} "
                         f"and {other.shape} for {len(label)} labels")
    point, draws = bootstrap_curves(label, {"reference": reference, "other": other}, n_boot=n_boot, seed=seed,
                                    resample_seeds=resample_seeds)
    rows = []
    for metric in metrics_:
        rows += lead_rows(metric, point["reference"][metric], point["other"][metric], draws["reference"][metric],
                          draws["other"][metric], level)
    return pd.DataFrame(rows)
