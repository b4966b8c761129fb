"""Tables of the DAR paper's experiments (Table 2: ablations, Table 3: training missing rate, and
our old/new recipe comparison): CSV and LaTeX in the paper's layout, and a plain-text summary.

Each row is one variant (see :mod:`dar_mmsa.benchmark.experiments`), averaged like Table 1: the
mean over the test missing rates of the per-rate means over seeds. Beside every metric the CSV
gives ``<metric>_seed_std``, the sample standard deviation over seeds of each seed's own
average over the rates -- the seed spread a difference between rows has to beat.
"""
from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path
from typing import List, Optional, Sequence

import pandas as pd

from ..benchmark import aggregate
from ..benchmark.aggregate import LOWER_IS_BETTER, METRICS, rank_marks
from ..benchmark.store import write_atomic
from .latex import PERCENT_METRICS, REPORTED_COLUMNS, TABLE1_COLUMNS, escape, format_metric, ordered_datasets
from .layout import float_table
from .names import dataset_display_name, model_display_name

SUMMARY_RATES = (0.0, 0.5, 0.9)


def variant_frame(frame: pd.DataFrame, variant_of_run: dict, experiment, several_models: bool) -> pd.DataFrame:
    """Evaluation rows with ``model`` = "<model>:<variant key>" and ``display_name`` = the variant
    label (prefixed by the model's name when the experiment runs several models)."""
    labels = {v.key: v.label for v in experiment.variants}
    out = frame.copy()
    keys = out["run_id"].map(variant_of_run)
    out["variant"] = keys
    out["display_name"] = [(f"{model_display_name(m)} " if several_models else "") + labels[k]
                           for m, k in zip(out["model"], keys)]
    out["model"] = out["model"] + ":" + keys
    return out


def seed_spread(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model): std over seeds of each seed's mean over the intra-modal conditions."""
    intra = frame[frame["protocol"] == "intra"]
    per_seed = intra.groupby(["dataset", "model", "seed"])[list(METRICS)].mean().reset_index()
    spread = per_seed.groupby(["dataset", "model"])[list(METRICS)].std(ddof=1).reset_index()
    return spread.rename(columns={m: f"{m}_seed_std" for m in METRICS})


def experiment_table(frame: pd.DataFrame, order: Sequence[str], condition_order: Sequence[str]):
    """(per-condition frame, table with one row per (dataset, variant) and the seed spreads)."""
    per_cond = aggregate.per_condition(frame, order, condition_order)
    table = aggregate.table1(per_cond, order)
    if len(table):
        table = table.merge(seed_spread(frame), on=["dataset", "model"], how="left")
    return per_cond, table


def load_reported(experiment, datasets: Sequence[str]) -> pd.DataFrame:
    """The paper's rows for this experiment (MMSA units), keyed like our rows by ``reported``."""
    if experiment.reported_file is None:
        return pd.DataFrame()
    text = resources.files("dar_mmsa.report").joinpath("reference", experiment.reported_file).read_text()
    by_value = {v.reported: v for v in experiment.variants if v.reported is not None}
    rows = []
    for r in csv.DictReader(text.splitlines()):
        value = r[experiment.reported_column]
        variant = by_value.get(value) or by_value.get(f"{float(value):.1f}" if value[:1].isdigit() else value)
        if r["dataset"] not in datasets or variant is None:
            continue
        row = {"dataset": r["dataset"], "model": f"reported:{variant.key}", "latex": variant.latex or variant.label}
        for column, metric in REPORTED_COLUMNS.items():
            row[metric] = float(r[column]) / 100 if metric in PERCENT_METRICS else float(r[column])
        rows.append(row)
    return pd.DataFrame(rows)


def _row_cells(rows: pd.DataFrame, datasets: Sequence[str], rank: bool) -> List[List[str]]:
    """Cell texts per row (model order of ``rows``), best bold and second underlined per column."""
    models = list(dict.fromkeys(rows["model"]))
    by_key = {(r["model"], r["dataset"]): r for _, r in rows.iterrows()}
    printed, marks = {}, {}
    for ds in datasets:
        for _, metrics in TABLE1_COLUMNS:
            for metric in metrics:
                column = [format_metric(metric, by_key[(m, ds)][metric]) if (m, ds) in by_key else None
                          for m in models]
                ranks = rank_marks([float(t) if t is not None else None for t in column],
                                   metric in LOWER_IS_BETTER) if rank else [""] * len(models)
                for m, text, mark in zip(models, column, ranks):
                    printed[(m, ds, metric)], marks[(m, ds, metric)] = text, mark
    style = {"best": r"\textbf{{{}}}", "second": r"\underline{{{}}}"}
    cells = []
    for m in models:
        row = []
        for ds in datasets:
            for _, metrics in TABLE1_COLUMNS:
                parts = []
                for k in metrics:
                    text = printed[(m, ds, k)]
                    parts.append("--" if text is None else style.get(marks[(m, ds, k)], "{}").format(text))
                row.append(" / ".join(parts))
        cells.append(row)
    return cells


def experiment_latex(table: pd.DataFrame, experiment, *, synthetic: bool, conditions: str, seeds: Sequence[int],
                     reported: Optional[pd.DataFrame] = None, note: str = "") -> str:
    """The experiment's table in the layout of the paper's Table 2/3, placed by :mod:`.layout`;
    ``note``: LaTeX appended to the caption (e.g. what a mark on a row name means)."""
    datasets = ordered_datasets(table)
    latex_names = {f"{m}:{v.key}": v.latex or escape(v.label) for m in set(table["model"].str.split(":").str[0])
                   for v in experiment.variants}
    several = table["model"].str.split(":").str[0].nunique() > 1
    n_cols = 1 + len(TABLE1_COLUMNS) * len(datasets)
    caption = (f"{experiment.title}: mean over the test {conditions} and seeds {', '.join(map(str, seeds))}. "
               f"Acc-2 and F1 are Has0 / Non0; accuracies and F1 in \\%. Best in bold, second underlined.")
    if reported is not None and len(reported):
        caption += " Rows under ``reported'' are the numbers printed in the DAR paper (not run here)."
    if note:
        caption += " " + note
    if synthetic:
        caption = r"\textbf{Synthetic data}: numbers are not comparable to the paper's. " + caption
    tabular = [r"\begin{tabular}{l" + ("c" * len(TABLE1_COLUMNS)) * len(datasets) + "}", r"\toprule"]
    group = " & ".join(rf"\multicolumn{{{len(TABLE1_COLUMNS)}}}{{c}}{{{dataset_display_name(d)}}}" for d in datasets)
    tabular.append(rf" & {group} \\")
    tabular.append(" ".join(rf"\cmidrule(lr){{{2 + i * len(TABLE1_COLUMNS)}-{1 + (i + 1) * len(TABLE1_COLUMNS)}}}"
                            for i in range(len(datasets))))
    tabular.append(f"{experiment.row_header} & " + " & ".join(h for _ in datasets for h, _ in TABLE1_COLUMNS) + r" \\")
    tabular.append(r"\midrule")
    names = {r["model"]: (escape(model_display_name(r["model"].split(":")[0])) + " " if several else "")
             + latex_names.get(r["model"], escape(r["display_name"])) for _, r in table.iterrows()}
    for model, cells in zip(dict.fromkeys(table["model"]), _row_cells(table, datasets, rank=True)):
        tabular.append(" & ".join([names[model], *cells]) + r" \\")
    if reported is not None and len(reported):
        reported = reported[reported["dataset"].isin(datasets)]
        tabular += [r"\midrule", rf"\multicolumn{{{n_cols}}}{{l}}{{\textit{{Reported in the DAR paper}}}} \\"]
        labels = dict(zip(reported["model"], reported["latex"]))
        for model, cells in zip(dict.fromkeys(reported["model"]), _row_cells(reported, datasets, rank=False)):
            tabular.append(" & ".join([labels[model] + " (reported)", *cells]) + r" \\")
    tabular += [r"\bottomrule", r"\end{tabular}"]
    return float_table(tabular, caption=caption, label=f"tab:{experiment.name}", tabcolsep_pt=4)


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    write_atomic(path, frame.to_csv(index=False, float_format="%.6g").encode())
    return path


def write_experiment_tables(root: Path, experiment, frame: pd.DataFrame, variant_of_run: dict,
                            models: Sequence[str], condition_order: Sequence[str], *, synthetic: bool,
                            conditions: str, seeds: Sequence[int], with_reported: bool):
    """Write ``<stem>.csv``, ``<stem>_per_rate.csv``, ``<stem>.tex`` under ``root``; returns
    (table, per-condition frame, files)."""
    frame = variant_frame(frame, variant_of_run, experiment, several_models=len(models) > 1)
    order = [f"{m}:{v.key}" for m in models for v in experiment.variants]
    per_cond, table = experiment_table(frame, order, condition_order)
    files = [_csv(frame, root / f"{experiment.stem}_evaluations.csv")]
    if not len(table):
        return table, per_cond, files
    files += [_csv(per_cond, root / f"{experiment.stem}_per_rate.csv"), _csv(table, root / f"{experiment.stem}.csv")]
    reported = load_reported(experiment, list(table["dataset"].unique())) if with_reported else None
    tex = experiment_latex(table, experiment, synthetic=synthetic, conditions=conditions, seeds=seeds,
                           reported=reported)
    write_atomic(root / f"{experiment.stem}.tex", tex.encode())
    return table, per_cond, files + [root / f"{experiment.stem}.tex"]


def experiment_summary(experiment, table: pd.DataFrame, per_cond: pd.DataFrame, *, synthetic: bool,
                       seeds: Sequence[int]) -> List[str]:
    """Plain-text lines: per variant the Table-1 average (Acc-2 Non0, MAE, with the seed spread) and
    the MAE at test rates 0.0 / 0.5 / 0.9 when they were run."""
    if table is None or not len(table):
        return ["no finished evaluations to report"]
    data = "SYNTHETIC data" if synthetic else "real data"
    rates = [r for r in SUMMARY_RATES if (per_cond["rate"] == r).any()]
    lines = [f"{experiment.title} ({data}): mean over test rates and seeds {', '.join(map(str, seeds))}; "
             f"+- = std over seeds of each seed's average",
             f"{'dataset':8} {'variant':28} {'Acc-2 Non0':>14} {'MAE':>14} " + " ".join(f"{'MAE@' + str(r):>8}"
                                                                                    for r in rates)]
    lines.append("-" * len(lines[-1]))
    for _, row in table.iterrows():
        at = per_cond[(per_cond["model"] == row["model"]) & (per_cond["dataset"] == row["dataset"])]
        mae_at = [at.loc[at["rate"] == r, "MAE_mean"] for r in rates]
        acc_sd, mae_sd = row.get("Non0_acc_2_seed_std"), row.get("MAE_seed_std")
        acc = f"{100 * row['Non0_acc_2']:.2f}" + ("" if pd.isna(acc_sd) else f"+-{100 * acc_sd:.2f}")
        mae = f"{row['MAE']:.3f}" + ("" if pd.isna(mae_sd) else f"+-{mae_sd:.3f}")
        lines.append(f"{row['dataset']:8} {row['display_name'][:28]:28} {acc:>14} {mae:>14} "
                     + " ".join(f"{float(v.iloc[0]):8.3f}" if len(v) else f"{'--':>8}" for v in mae_at))
    return lines
