"""LaTeX tables in the DAR paper's layout, placed on the page by :mod:`dar_mmsa.report.layout`.

Table 1: one ``\\multicolumn`` group per dataset with Acc-7, Acc-5, Acc-2, F1, MAE (down arrow),
Corr; Acc-2 and F1 print "Has0 / Non0"; accuracies and F1 x100 with 2 decimals, MAE and Corr
with 3. Per column (and per half of a "Has0 / Non0" cell) the best of our rows is bold and the
second best underlined, ranked on the printed values (ties share the mark). The optional block of
the paper's reported numbers is labelled "reported" and takes no part in the ranking. A dagger on
the first cell of a dataset's group marks a (model, dataset) averaging fewer conditions or seeds
than the command asked for; an asterisk marks a lead of the compared model that the paired
bootstrap finds significant (``benchmark.significance``).

The inter-modal table: one row per model, one column per modality subset present (L, A, V, L+A,
L+V, A+V, L+A+V) and their average, for one metric, one block per dataset.
"""
from __future__ import annotations

import csv
from importlib import resources
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

import pandas as pd

from ..benchmark.aggregate import LOWER_IS_BETTER, SUBSET_COLUMNS, counterpart, rank_marks
from .layout import float_table, preamble
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
# CH-SIMS's block: MMSA's SIMS metrics (as many columns as MOSI's, so the groups line up)
SIMS_TABLE1_COLUMNS = (
    ("Acc-5", ("Mult_acc_5",)),
    ("Acc-3", ("Mult_acc_3",)),
    ("Acc-2", ("Mult_acc_2",)),
    ("F1", ("F1_score",)),
    (r"MAE$\downarrow$", ("MAE",)),
    ("Corr", ("Corr",)),
)
PERCENT_METRICS = frozenset({"Mult_acc_7", "Mult_acc_5", "Has0_acc_2", "Non0_acc_2", "Has0_F1_score", "Non0_F1_score",
                             "Mult_acc_3", "Mult_acc_2", "F1_score"})
METRIC_NAMES = {"Mult_acc_7": "Acc-7", "Mult_acc_5": "Acc-5", "Has0_acc_2": "Acc-2 (Has0)",
                "Non0_acc_2": "Acc-2 (Non0)", "Has0_F1_score": "F1 (Has0)", "Non0_F1_score": "F1 (Non0)",
                "MAE": "MAE", "Corr": "Corr", "Mult_acc_3": "Acc-3", "Mult_acc_2": "Acc-2", "F1_score": "F1"}


def table1_columns(dataset: str) -> tuple:
    """The (header, metric keys) of a dataset's Table 1 group (CH-SIMS has its own metrics)."""
    return SIMS_TABLE1_COLUMNS if dataset == "sims" else TABLE1_COLUMNS
# Columns of the reported CSV -> MMSA metric keys (the CSV holds percentages for accuracies/F1).
REPORTED_COLUMNS = {"acc7": "Mult_acc_7", "acc5": "Mult_acc_5", "has0_acc2": "Has0_acc_2", "non0_acc2": "Non0_acc_2",
                    "has0_f1": "Has0_F1_score", "non0_f1": "Non0_F1_score", "mae": "MAE", "corr": "Corr"}
SIGNIFICANT_MARK = r"$^{\ast}$"
INCOMPLETE_MARK = r"$^{\dagger}$"
NAN_MARK = r"$^{\S}$"  # a mean over fewer runs than asked: some values were NaN
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
    """``NAN_MARK`` after a cell averaged over fewer seeds than it should (some values were NaN)."""
    row = by_key.get((model, dataset))
    n_nan = row.get(f"{metric}_n_nan") if row is not None else None
    return NAN_MARK if n_nan is not None and not pd.isna(n_nan) and n_nan > 0 else ""


def _cells(table: pd.DataFrame, datasets: Sequence[str], rank: bool, *,
           incomplete: Optional[Set[Tuple[str, str]]] = None,
           significant: Optional[Set[Tuple[str, str, str]]] = None) -> List[List[str]]:
    """Row-major cell texts (without the name column) for the rows of ``table``.

    ``incomplete``: (model, dataset) pairs whose first cell of the dataset gets a dagger;
    ``significant``: (model, dataset, metric) cells that get the significance mark."""
    incomplete, significant = incomplete or set(), significant or set()
    by_key = {(r["model"], r["dataset"]): r for _, r in table.iterrows()}
    models = list(dict.fromkeys(table["model"]))
    printed = {(m, ds, metric): format_metric(metric, by_key[(m, ds)][metric] if (m, ds) in by_key else None)
               for m in models for ds in datasets for _, metrics in table1_columns(ds) for metric in metrics}
    marks = {}
    for ds in datasets:
        for _, metrics in table1_columns(ds):
            for metric in metrics:
                values = [float(printed[(m, ds, metric)]) if printed[(m, ds, metric)] is not None else None
                          for m in models]
                column_marks = rank_marks(values, metric in LOWER_IS_BETTER) if rank else [""] * len(models)
                marks.update({(m, ds, metric): mark for m, mark in zip(models, column_marks)})

    def cell(m, ds, k):
        text = _marked(printed[(m, ds, k)], marks[(m, ds, k)])
        return text + SIGNIFICANT_MARK if (m, ds, k) in significant and printed[(m, ds, k)] is not None else text

    rows = []
    for m in models:
        row = []
        for ds in datasets:
            for i, (_, metrics) in enumerate(table1_columns(ds)):
                text = " / ".join(cell(m, ds, k) + _nan_mark(by_key, m, ds, k) for k in metrics)
                row.append(text + INCOMPLETE_MARK if i == 0 and (m, ds) in incomplete else text)
        rows.append(row)
    return rows


def incomplete_pairs(table: pd.DataFrame, n_conditions: int, n_seeds: int) -> Set[Tuple[str, str]]:
    """(model, dataset) rows averaging fewer conditions or seeds than the command asked for."""
    short = (table["n_conditions"] < n_conditions) | (table["min_seeds"] < n_seeds)
    return set(zip(table.loc[short, "model"], table.loc[short, "dataset"]))


def ordered_datasets(table: pd.DataFrame) -> List[str]:
    present = set(table["dataset"])
    return [d for d in ("mosi", "mosei") if d in present] + sorted(present - {"mosi", "mosei"})


def table1_latex(table: pd.DataFrame, *, synthetic: bool, conditions: str, seeds: Sequence[int],
                 reported: Optional[pd.DataFrame] = None, label: str = "tab:robustness",
                 n_conditions: Optional[int] = None, significant: Optional[Set[Tuple[str, str, str]]] = None,
                 significance_note: str = "") -> str:
    """Table 1 in LaTeX (see the module docstring).

    ``table``: rows of :func:`dar_mmsa.benchmark.aggregate.table1`; ``conditions``: how the
    averaged test conditions are described in the caption (e.g. "missing rates 0.0--0.9");
    ``n_conditions``: how many conditions the command asked for (default: the most any row has);
    ``significant``: (model, dataset, metric) cells marked as significant leads, explained by
    ``significance_note`` in the caption.
    """
    datasets = ordered_datasets(table)
    n_cols = 1 + len(TABLE1_COLUMNS) * len(datasets)
    requested = int(n_conditions if n_conditions is not None else table["n_conditions"].max())
    incomplete = incomplete_pairs(table, requested, len(seeds))
    caption = (f"Robustness to intra-modal missingness: mean over the test {conditions} and seeds "
               f"{', '.join(str(s) for s in seeds)}. "
               + ("Acc-2 and F1 are Has0 / Non0; accuracies" if set(datasets) - {"sims"} else "Accuracies")
               + " and F1 in \\%. Best in bold, second underlined.")
    if "sims" in datasets:
        caption += (" CH-SIMS: MMSA's SIMS metrics (Acc-2/3/5 over its class bins of [-1, 1], F1 of the "
                    "two classes, MAE and Corr of predictions clipped to [-1, 1]).")
    if significant:
        caption += f" {SIGNIFICANT_MARK}{significance_note}"
    if incomplete:
        caption += (rf" {INCOMPLETE_MARK}Fewer test conditions or seeds than the {requested} conditions and "
                    rf"{len(seeds)} seeds asked for on this dataset.")
    if any(table.get(f"{m}_n_nan", pd.Series(dtype=float)).fillna(0).gt(0).any()
           for d in datasets for _, ms in table1_columns(d) for m in ms):
        caption += rf" {NAN_MARK}The metric was undefined (NaN) in some runs: mean over the runs where it is defined."
    if reported is not None and len(reported):
        caption += " Rows marked ``reported'' are the numbers printed in the DAR paper (not run here)."
    if synthetic:
        caption = r"\textbf{Synthetic data}: numbers are not comparable to the paper's. " + caption
    tabular = [r"\begin{tabular}{l" + ("c" * len(TABLE1_COLUMNS)) * len(datasets) + "}", r"\toprule"]
    group = " & ".join(rf"\multicolumn{{{len(TABLE1_COLUMNS)}}}{{c}}{{{dataset_display_name(d)}}}" for d in datasets)
    tabular.append(rf" & {group} \\")
    tabular.append(" ".join(rf"\cmidrule(lr){{{2 + i * len(TABLE1_COLUMNS)}-{1 + (i + 1) * len(TABLE1_COLUMNS)}}}"
                            for i in range(len(datasets))))
    tabular.append("Method & " + " & ".join(h for d in datasets for h, _ in table1_columns(d)) + r" \\")
    tabular.append(r"\midrule")
    names = {r["model"]: escape(r["display_name"]) for _, r in table.iterrows()}
    cells = _cells(table, datasets, rank=True, incomplete=incomplete, significant=significant)
    for model, row in zip(dict.fromkeys(table["model"]), cells):
        tabular.append(" & ".join([names[model], *row]) + r" \\")
    if reported is not None and len(reported):
        tabular += [r"\midrule", rf"\multicolumn{{{n_cols}}}{{l}}{{\textit{{Reported in the DAR paper}}}} \\"]
        reported = reported[reported["dataset"].isin(datasets)]
        for model, row in zip(dict.fromkeys(reported["model"]), _cells(reported, datasets, rank=False)):
            tabular.append(" & ".join([escape(f"{model} (reported)"), *row]) + r" \\")
    tabular += [r"\bottomrule", r"\end{tabular}"]
    return float_table(tabular, caption=caption, label=label, tabcolsep_pt=4)


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
        caption += rf" {NAN_MARK}The metric was undefined (NaN) in some runs: mean over the runs where it is defined."
    if synthetic:
        caption = r"\textbf{Synthetic data}: numbers are not comparable to published ones. " + caption
    tabular = [r"\begin{tabular}{l" + "c" * len(columns) + "}", r"\toprule", "Method & " + " & ".join(columns) + r" \\"]
    for dataset in ordered_datasets(table):
        block = table[table["dataset"] == dataset]
        tabular += [r"\midrule", rf"\multicolumn{{{n_cols}}}{{l}}{{\textit{{{dataset_display_name(dataset)}}}}} \\"]
        printed = {c: [format_metric(metric, v) for v in block[c]] for c in columns}
        marks = {c: rank_marks([float(t) if t is not None else None for t in printed[c]], metric in LOWER_IS_BETTER)
                 for c in columns}
        for i, (_, row) in enumerate(block.iterrows()):
            nan = [row.get("n_nan" if c == "Avg" else f"n_nan {c}", 0) or 0 for c in columns]
            cells = [_marked(printed[c][i], marks[c][i]) + (NAN_MARK if n > 0 else "") for c, n in zip(columns, nan)]
            tabular.append(" & ".join([escape(row["display_name"]), *cells]) + r" \\")
    tabular += [r"\bottomrule", r"\end{tabular}"]
    return float_table(tabular, caption=caption, label=label, tabcolsep_pt=4)


ROBUSTNESS_METRICS = ("Non0_acc_2", "Mult_acc_5")


def _number(value, scale: float, digits: int) -> str:
    return "--" if value is None or pd.isna(value) else f"{scale * float(value):.{digits}f}"


def auc_marks(rows: pd.DataFrame, metric: str, printed_auc: Mapping[str, str]) -> Dict[str, str]:
    """Which AUC cells of one dataset and metric robustness.tex marks: model -> "best" or "".

    ``rows``: that block of :func:`dar_mmsa.benchmark.robustness.robustness_table` with its leads
    (``robustness.add_leads``), indexed by model; ``printed_auc``: model -> the AUC as printed. Only
    the reference is ever marked, when its AUC lead over every other model is significant after
    Holm's adjustment (``robustness.significant_best``): a best that no test supports is not marked."""
    from ..benchmark.robustness import significant_best

    best = {model for _, model, _ in significant_best(rows.reset_index(), "auc")}
    return {m: "best" if m in best and printed_auc[m] != "--" else "" for m in printed_auc}


def robustness_latex(table: pd.DataFrame, *, synthetic: bool, seeds: Sequence[int],
                     metrics: Sequence[str] = ROBUSTNESS_METRICS, label: str = "tab:robustness-summary") -> str:
    """Robustness summaries (rows of :func:`dar_mmsa.benchmark.robustness.robustness_table`): per
    metric its clean value, normalised AUC, effective robustness and breakdown rate; one block per dataset."""
    fields = (("clean", "$r{=}0$"), ("normalised_auc_oriented", "AUC"), ("effective_robustness_mean_oriented", "ER"),
              ("breakdown_rate", "$r_{\\mathrm{bd}}$"))
    fraction = float(table["fraction"].iloc[0]) if len(table) else 0.9
    baselines = sorted({b for b in table["baseline"].dropna()})
    baseline_names = ", ".join(escape(table.loc[table["model"] == b, "display_name"].iloc[0]) for b in baselines)
    n_cols = 1 + len(fields) * len(metrics)
    caption = (f"How the scores decay with the test missing rate (mean over seeds {', '.join(map(str, seeds))}; "
               f"accuracies in \\%). AUC: area under the metric-vs-rate curve divided by the rate range; "
               f"ER: MultiBench's effective robustness (mean over rates of the score minus the baseline's curve "
               f"shifted to the model's clean score"
               + (f"; baseline {baseline_names}" if baseline_names else "") + "); "
               f"$r_{{\\mathrm{{bd}}}}$: first rate where the score falls below {fraction:g} of its $r{{=}}0$ value "
               f"(interpolated; -- if never). AUC in bold: the reference's lead over every other model is significant "
               f"(paired bootstrap, Holm-adjusted over the primary family).")
    if "sims" in set(table["dataset"]):
        caption += " CH-SIMS rows: MMSA's SIMS Acc-2 under the Acc-2 heading."
    if synthetic:
        caption = r"\textbf{Synthetic data}: numbers are not comparable to published ones. " + caption
    tabular = [r"\begin{tabular}{l" + "c" * (n_cols - 1) + "}", r"\toprule",
               " & " + " & ".join(rf"\multicolumn{{{len(fields)}}}{{c}}{{{escape(METRIC_NAMES.get(m, m))}}}"
                                  for m in metrics) + r" \\",
               " ".join(rf"\cmidrule(lr){{{2 + i * len(fields)}-{1 + (i + 1) * len(fields)}}}"
                        for i in range(len(metrics))),
               "Method & " + " & ".join(h for _ in metrics for _, h in fields) + r" \\"]
    for dataset in ordered_datasets(table):
        block = table[table["dataset"] == dataset]
        tabular += [r"\midrule", rf"\multicolumn{{{n_cols}}}{{l}}{{\textit{{{dataset_display_name(dataset)}}}}} \\"]
        models = list(dict.fromkeys(block["model"]))
        cells = {m: [] for m in models}
        for metric in metrics:
            rows = block[block["metric"] == counterpart(metric, dataset)].set_index("model")
            scale = 100.0 if metric in PERCENT_METRICS else 1.0
            printed_auc = {m: _number(rows["normalised_auc_oriented"].get(m), scale, 2 if scale == 100 else 3) for m in models}
            marks = auc_marks(rows, metric, printed_auc)
            for m in models:
                cells[m] += [_number(rows["clean"].get(m), scale, 2 if scale == 100 else 3),
                             _marked(printed_auc[m], marks[m]) if printed_auc[m] != "--" else "--",
                             _number(rows["effective_robustness_mean_oriented"].get(m), scale, 2 if scale == 100 else 3),
                             _number(rows["breakdown_rate"].get(m), 1.0, 2)]
        for m in models:
            name = escape(block.loc[block["model"] == m, "display_name"].iloc[0])
            tabular.append(" & ".join([name, *cells[m]]) + r" \\")
    tabular += [r"\bottomrule", r"\end{tabular}"]
    return float_table(tabular, caption=caption, label=label, tabcolsep_pt=3)


def standalone_document(*tables: str) -> str:
    """A two-column article around table texts (for checking them)."""
    return "\n".join([*preamble(), r"\begin{document}", *tables, r"\end{document}", ""])
