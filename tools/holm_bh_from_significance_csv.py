#!/usr/bin/env python
"""Holm and Benjamini-Hochberg adjustments of a committed ``significance.csv`` that has no store.

Some evidence folders keep only the report CSVs of their runs (no per-sample predictions), so their
paired bootstrap cannot be redone. This reads their ``significance.csv`` as it is and adjusts its
p-values with ``dar_mmsa.benchmark.multiple_testing`` over the families of ``docs/benchmark.md``:

* ``p_holm`` / ``q_bh``: per reference, every model x metric x condition of the file;
* ``p_holm_primary``: per reference, Acc-2 Non0 and MAE on the Table 1 average;
* ``p_holm_average``: per reference and model, every metric on the Table 1 average.

Those files used the older p-value convention ``2 k / B`` (0 when no draw crosses 0). The adjustment
is done twice: on the p-values as written, and on ``2 (k + 1) / (B + 1)`` (the current convention,
recovered exactly from ``k = p B / 2``), which is never smaller.

Usage: python tools/holm_bh_from_significance_csv.py FOLDER/significance.csv
"""
from __future__ import annotations

import sys

import pandas as pd

from dar_mmsa.benchmark.multiple_testing import add_adjusted, holm

PRIMARY_METRICS = ("Non0_acc_2", "MAE")
AVERAGE = "table1_avg"
ALPHA = 0.05


def current_convention(p_value, n_boot):
    """``2 (k + 1) / (B + 1)``, capped at 1, from an older ``2 k / B``."""
    return ((p_value * n_boot + 2) / (n_boot + 1)).clip(upper=1.0)


def adjusted(frame: pd.DataFrame, p_column: str) -> pd.DataFrame:
    primary = (frame["condition"] == AVERAGE) & frame["metric"].isin(PRIMARY_METRICS)
    out = add_adjusted(frame, groups=["reference"], primary=primary, p_column=p_column, alpha=ALPHA)
    average = out["condition"] == AVERAGE
    out["p_holm_average"] = float("nan")
    out.loc[average, "p_holm_average"] = (out[average].groupby(["reference", "model"])[p_column]
                                          .transform(lambda p: holm(p.to_numpy())))
    return out


def report(frame: pd.DataFrame) -> list[str]:
    frame = frame.assign(p_current=current_convention(frame["p_value"], frame["n_boot"]))
    lines = []
    for p_column in ("p_value", "p_current"):
        out = adjusted(frame, p_column)
        lines += [f"== {p_column}: {int((out[p_column] <= ALPHA).sum())} of {len(out)} rows at p <= {ALPHA}, "
                  f"{int((out['p_holm'] <= ALPHA).sum())} after Holm, {int((out['q_bh'] <= ALPHA).sum())} after BH, "
                  f"{int(out['significant'].sum())} primary after Holm",
                  "reference model condition metric lead p p_holm q_bh p_holm_primary p_holm_average"]
        shown = out[(out["condition"] == AVERAGE) | (out[p_column] <= ALPHA)]
        for row in shown.itertuples():
            lines.append(f"{row.reference} {row.model} {row.condition} {row.metric} {row.lead:+.4f} "
                         f"{getattr(row, p_column):.3f} {row.p_holm:.3f} {row.q_bh:.3f} {row.p_holm_primary:.3f} {row.p_holm_average:.3f}")
    return lines


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print("\n".join(report(pd.read_csv(sys.argv[1]))))
