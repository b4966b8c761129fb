"""LaTeX tables in the DAR paper's layout (booktabs; needs the ``booktabs`` and ``multirow`` packages).

Table 1: one ``\\multicolumn`` group per dataset with Acc-7, Acc-5, Acc-2, F1, MAE (down arrow),
Corr; Acc-2 and F1 print "Has0 / Non0"; accuracies and F1 x100 with 2 decimals, MAE and Corr
with 3. Per column (and per half of a "Has0 / Non0" cell) the best of our rows is bold and the
second best underlined, ranked on the printed values (ties share the mark). The optional block of
the paper's reported numbers is labelled "reported" and takes no part in the ranking.

The inter-modal table: one row per model, one column per modality subset present (L, A, V, L+A,
L+V, A+V, L+A+V) and their average, for one metric, one block per dataset.
"""
from __future__ import annotations

import csv
from importlib import resources
from typing import List, Optional, Sequence

import pandas as pd

from ..benchmark.aggregate import LOWER_IS_BETTER, SUBSET_COLUMNS, rank_marks
from .names import dataset_display_name

# (header, metric keys): two keys print as "Has0 / Non0".
TABLE1_COLUMNS = (
    ("Acc-7", ("Mult_acc_7",)),
    ("Acc-5", ("Mult_acc_5",)),
    ("Acc-2", ("Has0_acc_2", "Non0_acc_2")),
    ("F1", ("Has0_F1_score", "Non0_F1_score")),
    (r"MAE$\downarrow$", ("MAE",)),
    ("Corr", ("Corr",)),
)
PERCENT_METRICS = frozenset({"Mult_acc_7", "Mult_acc_5", "Has0_acc_2", "Non0_acc_2", "Has0_F1_score", "Non0_F1_score"})
METRIC_NAMES = {"Mult_acc_7": "Acc-7", "Mult_acc_5": "Acc-5", "Has0_acc_2": "Acc-2 (Has0)",
                "Non0_acc_2": "Acc-2 (Non0)", "Has0_F1_score": "F1 (Has0)", "Non0_F1_score": "F1 (Non0)",
                "MAE": "MAE", "Corr": "Corr"}
# Columns of the reported CSV -> MMSA metric keys (the CSV holds percentages for accuracies/F1).
REPORTED_COLUMNS = {"acc7": "Mult_acc_7", "acc5": "Mult_acc_5", "has0_acc2": "Has0_acc_2", "non0_acc2": "Non0_acc_2",
                    "has0_f1": "Has0_F1_score", "non0_f1": "Non0_F1_score", "mae": "MAE", "corr": "Corr"}
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def format_metric(metric: str, value: Optional[float]) -> Optional[str]:
    """The printed value: x100 with 2 decimals for accuracies and F1, 3 decimals for MAE and Corr."""
    if value is None or pd.isna(value):
        return None
    return f"{100 * value:.2f}" if metric in PERCENT_METRICS else f"{value:.3f}"


def _marked(text: Optional[str], mark: str) -> str:
    if text is None:
        return "--"
    return {"best": rf"\textbf{{{text}}}", "second": rf"\underline{{{text}}}"}.get(mark, text)


def load_reported(datasets: Sequence[str] = ("mosi", "mosei")) -> pd.DataFrame:
    """The DAR paper's Table 1 (shipped CSV), in MMSA's units (fractions), for ``datasets``."""
    text = resources.files("dar_mmsa.report").joinpath("reference", "dar_table1_reported.csv").read_text()
    rows = []
    for r in csv.DictReader(text.splitlines()):
        if r["dataset"] not in datasets:
            continue
        row = {"dataset": r["dataset"], "model": r["model"], "display_name": f"{r['model']} (reported)"}
        for column, metric in REPORTED_COLUMNS.items():
            value = float(r[column])
            row[metric] = value / 100 if metric in PERCENT_METRICS else value
        rows.append(row)
    return pd.DataFrame(rows)


def _nan_mark(by_key, model, dataset, metric) -> str:
    """``$^*$`` after a cell averaged over fewer seeds than it should (some values were NaN)."""
    row = by_key.get((model, dataset))
    n_nan = row.get(f"{metric}_n_nan") if row is not None else None
    return r"$^*$" if n_nan is not None and not pd.isna(n_nan) and n_nan > 0 else ""


def _cells(table: pd.DataFrame, datasets: Sequence[str], rank: bool) -> List[List[str]]:
    """Row-major cell texts (without the name column) for the rows of ``table``."""
    by_key = {(r["model"], r["dataset"]): r for _, r in table.iterrows()}
    models = list(dict.fromkeys(table["model"]))
    printed = {(m, ds, metric): format_metric(metric, by_key[(m, ds)][metric] if (m, ds) in by_key else None)
               for m in models for ds in datasets for _, metrics in TABLE1_COLUMNS for metric in metrics}
    marks = {}
    for ds in datasets:
        for _, metrics in TABLE1_COLUMNS:
            for metric in metrics:
                values = [float(printed[(m, ds, metric)]) if printed[(m, ds, metric)] is not None else None
                          for m in models]
                column_marks = rank_marks(values, metric in LOWER_IS_BETTER) if rank else [""] * len(models)
                marks.update({(m, ds, metric): mark for m, mark in zip(models, column_marks)})
    rows = []
    for m in models:
        row = []
        for ds in datasets:
            for _, metrics in TABLE1_COLUMNS:
                row.append(" / ".join(_marked(printed[(m, ds, k)], marks[(m, ds, k)]) + _nan_mark(by_key, m, ds, k)
                                      for k in metrics))
        rows.append(row)
    return rows


def table1_latex(table: pd.DataFrame, *, synthetic: bool, conditions: str, seeds: Sequence[int],
                 reported: Optional[pd.DataFrame] = None, label: str = "tab:robustness") -> str:
    """Table 1 as a LaTeX ``table`` (see the module docstring).

    ``table``: rows of :func:`dar_mmsa.benchmark.aggregate.table1`; ``conditions``: how the
    averaged test conditions are described in the caption (e.g. "missing rates 0.0--0.9").
    """
    datasets = [d for d in ("mosi", "mosei") if d in set(table["dataset"])] + \
        sorted(set(table["dataset"]) - {"mosi", "mosei"})
    n_cols = 1 + len(TABLE1_COLUMNS) * len(datasets)
    incomplete = set(table.loc[(table["n_conditions"] < table["n_conditions"].max())
                               | (table["min_seeds"] < len(seeds)), "model"])
    names = {r["model"]: escape(r["display_name"]) + (r"$^\dagger$" if r["model"] in incomplete else "")
             for _, r in table.iterrows()}
    lines = [r"\begin{table}[t]", r"\centering", r"\small"]
    caption = (f"Robustness to intra-modal missingness: mean over the test {conditions} and seeds "
               f"{', '.join(str(s) for s in seeds)}. Acc-2 and F1 are Has0 / Non0; accuracies and F1 in \\%. "
               f"Best in bold, second underlined.")
    if incomplete:
        caption += r" $^\dagger$Some runs are missing."
    if any(table.get(f"{m}_n_nan", pd.Series(dtype=float)).fillna(0).gt(0).any() for _, ms in TABLE1_COLUMNS
           for m in ms):
        caption += r" $^*$The metric was undefined (NaN) in some runs: mean over the runs where it is defined."
    if reported is not None and len(reported):
        caption += " Rows marked ``reported'' are the numbers printed in the DAR paper (not run here)."
    if synthetic:
        caption = r"\textbf{Synthetic data}: numbers are not comparable to the paper's. " + caption
    lines += [rf"\caption{{{caption}}}", rf"\label{{{label}}}",
              r"\begin{tabular}{l" + ("c" * len(TABLE1_COLUMNS)) * len(datasets) + "}", r"\toprule"]
    group = " & ".join(rf"\multicolumn{{{len(TABLE1_COLUMNS)}}}{{c}}{{{dataset_display_name(d)}}}" for d in datasets)
    lines.append(rf"\multirow{{2}}{{*}}{{Method}} & {group} \\")
    lines.append(" ".join(rf"\cmidrule(lr){{{2 + i * len(TABLE1_COLUMNS)}-{1 + (i + 1) * len(TABLE1_COLUMNS)}}}"
                          for i in range(len(datasets))))
    lines.append(" & " + " & ".join(h for _ in datasets for h, _ in TABLE1_COLUMNS) + r" \\")
    lines.append(r"\midrule")
    for model, cells in zip(dict.fromkeys(table["model"]), _cells(table, datasets, rank=True)):
        lines.append(" & ".join([names[model], *cells]) + r" \\")
    if reported is not None and len(reported):
        lines += [r"\midrule", rf"\multicolumn{{{n_cols}}}{{l}}{{\textit{{Reported in the DAR paper}}}} \\"]
        reported = reported[reported["dataset"].isin(datasets)]
        for model, cells in zip(dict.fromkeys(reported["model"]), _cells(reported, datasets, rank=False)):
            lines.append(" & ".join([escape(f"{model} (reported)"), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def inter_latex(table: pd.DataFrame, *, synthetic: bool, seeds: Sequence[int], metric: str = "Non0_acc_2",
                label: str = "tab:inter-modal") -> str:
    """The inter-modal table (rows of :func:`dar_mmsa.benchmark.aggregate.inter_table`)."""
    columns = [*SUBSET_COLUMNS, "Avg"]
    n_cols = 1 + len(columns)
    caption = (f"Robustness to inter-modal missingness: {escape(METRIC_NAMES.get(metric, metric))} "
               f"with only the listed modalities present (L: text, A: audio, V: vision; absent text is "
               f"[UNK] between [CLS] and [SEP], absent audio/vision is zeros), mean over seeds "
               f"{', '.join(str(s) for s in seeds)}. Best in bold, second underlined.")
    if "n_nan" in table and (table["n_nan"].fillna(0) > 0).any():
        caption += r" $^*$The metric was undefined (NaN) in some runs: mean over the runs where it is defined."
    if synthetic:
        caption = r"\textbf{Synthetic data}: numbers are not comparable to published ones. " + caption
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{caption}}}", rf"\label{{{label}}}",
             r"\begin{tabular}{l" + "c" * len(columns) + "}", r"\toprule",
             "Method & " + " & ".join(columns) + r" \\"]
    for dataset in [d for d in ("mosi", "mosei") if d in set(table["dataset"])] + \
            sorted(set(table["dataset"]) - {"mosi", "mosei"}):
        block = table[table["dataset"] == dataset]
        lines += [r"\midrule", rf"\multicolumn{{{n_cols}}}{{l}}{{\textit{{{dataset_display_name(dataset)}}}}} \\"]
        printed = {c: [format_metric(metric, v) for v in block[c]] for c in columns}
        marks = {c: rank_marks([float(t) if t is not None else None for t in printed[c]], metric in LOWER_IS_BETTER)
                 for c in columns}
        for i, (_, row) in enumerate(block.iterrows()):
            nan = [row.get("n_nan" if c == "Avg" else f"n_nan {c}", 0) or 0 for c in columns]
            cells = [_marked(printed[c][i], marks[c][i]) + (r"$^*$" if n > 0 else "") for c, n in zip(columns, nan)]
            lines.append(" & ".join([escape(row["display_name"]), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def standalone_document(*tables: str) -> str:
    """A minimal compilable document around tables (for checking them)."""
    return "\n".join([r"\documentclass{article}", r"\usepackage{booktabs}", r"\usepackage{multirow}",
                      r"\begin{document}", *tables,
                      r"\end{document}", ""])
