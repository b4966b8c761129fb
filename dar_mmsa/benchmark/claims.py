"""What the summary may claim from ``significance.csv``: the primary family's leads after Holm's
adjustment are claims; every other row is exploratory (``docs/benchmark.md``, "Families and
adjustment"). Text only: the numbers come from ``analysis.compare_to_reference``."""
from __future__ import annotations

from typing import List, Sequence

import pandas as pd

SHORT_NAMES = {"Mult_acc_7": "Acc-7", "Mult_acc_5": "Acc-5", "Has0_acc_2": "Acc-2 Has0", "Non0_acc_2": "Acc-2 Non0",
               "Has0_F1_score": "F1 Has0", "Non0_F1_score": "F1 Non0", "MAE": "MAE", "Corr": "Corr"}
PROPOSED_MODEL = "dar"  # the default reference: the paper's proposed model, fixed before any result
ALPHA = 0.05


def primary_label(primary: Sequence[str]) -> str:
    return ", ".join(SHORT_NAMES.get(m, m) for m in primary)


def _p(value) -> str:
    return "--" if value is None or pd.isna(value) else f"{value:.3g}"


def _listed(rows: pd.DataFrame) -> str:
    return ", ".join(f"{SHORT_NAMES.get(r['metric'], r['metric'])} (p_Holm {_p(r['p_holm_primary'])})"
                     for _, r in rows.iterrows()) or "none"


def significance_lines(sig: pd.DataFrame, options, *, chosen_on_test_set: bool = False) -> List[str]:
    """The summary's lines on ``significance.csv`` rows ``sig`` (``options``: ``AnalysisOptions``)."""
    if not len(sig):
        return []
    lines = ["", f"Paired bootstrap ({int(sig['n_boot'].iloc[0])} draws over test samples and seeds; "
                 f"significance.csv). Significant = Holm-adjusted p <= {ALPHA:g} over the primary family "
                 f"({primary_label(options.primary)} on the Table 1 average, against every other model)"]
    names = dict(zip(sig["reference"], sig["reference_name"]))
    who = ", ".join(names.get(r, r) for r in dict.fromkeys(sig["reference"]))
    if chosen_on_test_set:
        lines.append(f"note: the reference ({who}) was chosen on the test set (--compare best: the best Table 1 "
                     f"average Acc-2 Non0), so its leads are biased upward")
    else:
        why = "--compare" if options.compare else ("the proposed model" if set(names) == {PROPOSED_MODEL}
                                                   else "the first model given; no DAR in the run")
        lines.append(f"reference: {who} ({why}, fixed before the results)")
    primary = sig[sig["family"] == "primary"]
    for (dataset, reference, model), block in primary.groupby(["dataset", "reference_name", "display_name"],
                                                              sort=False):
        won = block[block["significant"] & (block["lead"] > 0)]
        lost = block[block["significant"] & (block["lead"] < 0)]
        rest = block[~block["significant"]]
        lines.append(f"{dataset:8} {reference[:20]} vs {model[:20]}: better on {_listed(won)}"
                     + (f"; worse on {_listed(lost)}" if len(lost) else "")
                     + (f"; not significant: {_listed(rest)}" if len(rest) else ""))
    defined = sig["defined"].astype(bool)
    others = sig[(sig["family"] != "primary") & defined]
    if len(others):
        lines.append(f"exploratory (not claims): {int((others['q_bh'] <= ALPHA).sum())} of {len(others)} other rows "
                     f"(other metrics on the average, per-rate rows) have a Benjamini-Hochberg q <= {ALPHA:g}")
    if (~defined).any():
        lines.append(f"note: {int((~defined).sum())} row(s) of significance.csv are undefined (a metric undefined "
                     f"for every seed): no interval and no p-value")
    return lines
