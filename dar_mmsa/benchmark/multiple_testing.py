"""Adjusted p-values for a family of tests (pure functions on arrays; NaN = no test, left out).

* :func:`holm`: Holm's step-down adjustment (Holm, "A simple sequentially rejective multiple test
  procedure", Scand. J. Statist. 1979). Rejecting every test with ``p_holm <= alpha`` keeps the
  family-wise error rate (any false claim) at ``alpha`` under any dependence between the tests.
* :func:`benjamini_hochberg`: Benjamini and Hochberg's step-up q-values (JRSS B 1995). Rejecting
  every test with ``q <= alpha`` keeps the expected share of false claims among the claims at
  ``alpha`` (independent or positively dependent tests).
"""
from __future__ import annotations

import numpy as np


def _ordered(p_values):
    """(p, an all-NaN output of its shape, the indices of the finite p-values in ascending order)."""
    p = np.asarray(p_values, dtype=float).reshape(-1)
    tested = np.flatnonzero(np.isfinite(p))
    return p, np.full(p.shape, np.nan), tested[np.argsort(p[tested], kind="stable")]


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values: the i-th smallest of m is max over j <= i of min(1, (m - j + 1) p_(j))."""
    p, out, order = _ordered(p_values)
    m = len(order)
    if not m:
        return out
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def benjamini_hochberg(p_values) -> np.ndarray:
    """BH q-values: the i-th smallest of m is min over j >= i of min(1, m p_(j) / j)."""
    p, out, order = _ordered(p_values)
    m = len(order)
    if not m:
        return out
    scaled = np.minimum(1.0, m * p[order] / np.arange(1, m + 1))
    out[order] = np.minimum.accumulate(scaled[::-1])[::-1]
    return out


def add_adjusted(frame, *, groups, primary, p_column: str = "p_value", prefix: str = "", alpha: float = 0.05):
    """Columns ``{prefix}p_holm`` and ``{prefix}q_bh`` (over each group of ``groups``: the whole
    family), ``{prefix}p_holm_primary`` (Holm over the rows of the group where ``primary`` is
    True) and ``{prefix}significant`` (primary and ``p_holm_primary <= alpha``) of a pandas frame."""
    out = frame.copy()
    primary = np.asarray(primary, dtype=bool)
    holm_all, bh_all, holm_primary = (np.full(len(out), np.nan) for _ in range(3))
    if len(out):
        for positions in out.groupby(list(groups), sort=False, dropna=False).indices.values():
            p = out[p_column].to_numpy(dtype=float)[positions]
            holm_all[positions], bh_all[positions] = holm(p), benjamini_hochberg(p)
            chosen = positions[primary[positions]]
            holm_primary[chosen] = holm(out[p_column].to_numpy(dtype=float)[chosen])
    out[f"{prefix}p_holm"], out[f"{prefix}q_bh"], out[f"{prefix}p_holm_primary"] = holm_all, bh_all, holm_primary
    out[f"{prefix}significant"] = primary & (np.nan_to_num(holm_primary, nan=np.inf) <= alpha)
    return out
