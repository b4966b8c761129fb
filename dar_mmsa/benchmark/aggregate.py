"""From stored evaluations to the numbers of the tables: per-seed rows, per-condition means and
standard deviations over seeds, Table 1 (mean over the missing rates of the per-rate means) and
the inter-modal table (one metric per modality subset, plus their average).

Metrics stay in MMSA's units here (accuracies and F1 as fractions); the LaTeX writer scales them.
Standard deviations are sample standard deviations over seeds (ddof = 1), empty with one seed.

A metric can be NaN in one run (MMSA's ``Corr`` of a constant prediction). Means and standard
deviations are then over the valid values only, and that is never hidden: ``<metric>_n`` counts
the valid values of a cell (next to ``n_seeds``), Table 1 and the inter-modal table carry
``<metric>_n_nan`` / ``n_nan`` (NaN values behind a number), the LaTeX cells are marked and the
summary names them (:func:`nan_lines`).

Each dataset has MMSA's metrics for it (``MetricsTop``): MOSI/MOSEI the 8 of :data:`METRICS`, CH-SIMS
:data:`SIMS_METRICS` (Acc-2/3/5 on its [-1, 1] class bins, F1, MAE and Corr on clipped values). A
frame with SIMS rows gets SIMS's columns as well (:func:`metrics_of`); a metric that does not belong
to a row's dataset stays empty there and never counts as NaN.
"""
from __future__ import annotations

from typing import Iterable, List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from .grid import SUBSETS, subset_label

METRICS = ("Mult_acc_7", "Mult_acc_5", "Has0_acc_2", "Non0_acc_2", "Has0_F1_score", "Non0_F1_score", "MAE", "Corr")
SIMS_METRICS = ("Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr")
DATASET_METRICS = {"sims": SIMS_METRICS}  # other datasets: METRICS
# A dataset's counterpart of a MOSI/MOSEI headline metric (figures, robustness, reference model).
SIMS_COUNTERPARTS = {"Non0_acc_2": "Mult_acc_2", "Has0_acc_2": "Mult_acc_2", "Non0_F1_score": "F1_score",
                     "Has0_F1_score": "F1_score", "Mult_acc_7": "Mult_acc_5"}


def dataset_metrics(dataset: str) -> tuple:
    """MMSA's metrics of ``dataset`` (CH-SIMS has its own)."""
    return DATASET_METRICS.get(dataset, METRICS)


def metrics_of(datasets: Iterable[str]) -> tuple:
    """Every metric of the given datasets, MOSI's first (the columns of a frame holding them)."""
    out = list(METRICS)
    for dataset in datasets:
        out += [m for m in dataset_metrics(dataset) if m not in out]
    return tuple(out)


def counterpart(metric: str, dataset: str) -> str:
    """``metric`` itself if ``dataset`` has it, else that dataset's counterpart (SIMS: Acc-2 for Non0 Acc-2)."""
    if metric in dataset_metrics(dataset):
        return metric
    return SIMS_COUNTERPARTS.get(metric, metric) if dataset == "sims" else metric
LOWER_IS_BETTER = frozenset({"MAE"})
CONDITION_COLUMNS = ("protocol", "condition", "label", "rate", "rate_text", "rate_audio", "rate_vision")
SUBSET_COLUMNS = tuple(subset_label(p) for p in SUBSETS)


def records_frame(records: Iterable[Mapping]) -> pd.DataFrame:
    """One row per stored evaluation (model, dataset, seed, condition) with its metrics."""
    records = list(records)
    metrics = metrics_of({r["dataset"] for r in records})
    rows = []
    for r in records:
        c = r["condition"]
        row = {"model": r["model"], "display_name": r.get("display_name", r["model"]), "dataset": r["dataset"],
               "seed": int(r["seed"]), "run_id": r["run_id"], "config_hash": r["config_hash"],
               "protocol": c["protocol"], "condition": c["key"], "label": c["label"], "rate": c["rate"],
               "rate_text": c["rate_text"], "rate_audio": c["rate_audio"], "rate_vision": c["rate_vision"],
               "data": "synthetic" if r["data"]["synthetic"] else "real", "wall_time_s": r["wall_time_s"],
               "realised_drop_fraction": r.get("realised_drop_fraction")}
        row.update({m: r["metrics"].get(m) for m in metrics})
        row["Loss"] = r["metrics"].get("Loss")
        rows.append(row)
    columns = ["data", "model", "display_name", "dataset", "seed", "run_id", "config_hash", *CONDITION_COLUMNS,
               "wall_time_s", "realised_drop_fraction", *metrics, "Loss"]
    return pd.DataFrame(rows, columns=columns)


def _data_label(group: pd.DataFrame) -> str:
    """"synthetic" if any of the rows comes from synthetic data, else "real"."""
    return "synthetic" if (group["data"] == "synthetic").any() else "real"


def ordered_rows(frame: pd.DataFrame, model_order: Sequence[str], condition_order: Sequence[str]) -> pd.DataFrame:
    """Rows in the order of the command line: dataset (MOSI first), model, condition."""
    if frame.empty:
        return frame

    def rank(column, order):
        positions = {v: i for i, v in enumerate(order)}
        if column not in frame:
            return np.zeros(len(frame), dtype=int)
        return frame[column].map(lambda v: positions.get(v, len(positions))).to_numpy()

    order = np.lexsort((rank("condition", condition_order), rank("model", model_order),
                        rank("dataset", ("mosi", "mosei", "sims"))))
    return frame.iloc[order].reset_index(drop=True)


def per_condition(frame: pd.DataFrame, model_order: Sequence[str] = (),
                  condition_order: Sequence[str] = ()) -> pd.DataFrame:
    """Mean and std over seeds per (dataset, model, condition): columns ``<metric>_mean``/``_std``."""
    groups = ["dataset", "model", "display_name", *CONDITION_COLUMNS]
    metrics = metrics_of(frame["dataset"].unique())
    rows = []
    for key, group in frame.groupby(groups, dropna=False, sort=False):
        row = dict(zip(groups, key))
        row["rate"] = None if pd.isna(row["rate"]) else row["rate"]
        row["n_seeds"] = int(group["seed"].nunique())
        row["seeds"] = " ".join(str(s) for s in sorted(group["seed"].unique()))
        row["data"] = _data_label(group)
        for m in metrics:
            if m not in dataset_metrics(row["dataset"]):  # another dataset's metric: empty, not NaN
                row.update({f"{m}_n": 0, f"{m}_mean": None, f"{m}_std": None})
                continue
            values = group[m].astype(float).dropna()
            row[f"{m}_n"] = int(len(values))
            row[f"{m}_mean"] = float(values.mean()) if len(values) else None
            row[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else None
        rows.append(row)
    columns = ["data", *groups, "n_seeds", "seeds", *(f"{m}_{s}" for m in metrics for s in ("mean", "std", "n"))]
    return ordered_rows(pd.DataFrame(rows, columns=columns), model_order, condition_order)


def table1(per_cond: pd.DataFrame, model_order: Sequence[str] = ()) -> pd.DataFrame:
    """Table 1: per (dataset, model), the mean over the intra-modal conditions of the per-condition means."""
    intra = per_cond[per_cond["protocol"] == "intra"]
    metrics = metrics_of(per_cond["dataset"].unique())
    rows = []
    for (dataset, model, display), group in intra.groupby(["dataset", "model", "display_name"], sort=False):
        row = {"dataset": dataset, "model": model, "display_name": display,
               "n_conditions": int(len(group)), "min_seeds": int(group["n_seeds"].min()),
               "data": _data_label(group)}
        for m in metrics:
            if m not in dataset_metrics(dataset):
                row[m], row[f"{m}_n_nan"] = None, 0
                continue
            means = group[f"{m}_mean"].astype(float)
            # a condition with no valid value leaves the cell undefined rather than averaging the others
            row[m] = float(means.mean()) if means.notna().all() else None
            row[f"{m}_n_nan"] = int((group["n_seeds"] - group[f"{m}_n"]).sum())
        rows.append(row)
    columns = ["data", "dataset", "model", "display_name", "n_conditions", "min_seeds", *metrics,
               *(f"{m}_n_nan" for m in metrics)]
    return ordered_rows(pd.DataFrame(rows, columns=columns), model_order, ())


def inter_table(per_cond: pd.DataFrame, metric: str = "Non0_acc_2", model_order: Sequence[str] = ()) -> pd.DataFrame:
    """Rows (dataset, model); columns the 7 modality subsets (mean over seeds) and their average."""
    subsets = per_cond[per_cond["protocol"] == "subset"]
    rows = []
    for (dataset, model, display), group in subsets.groupby(["dataset", "model", "display_name"], sort=False):
        shown = counterpart(metric, dataset)
        values = {k: (None if pd.isna(v) else v) for k, v in zip(group["label"], group[f"{shown}_mean"])}
        row = {"dataset": dataset, "model": model, "display_name": display, "metric": shown,
               "data": _data_label(group)}
        row.update({label: values.get(label) for label in SUBSET_COLUMNS})
        present = [v for v in (values.get(label) for label in SUBSET_COLUMNS) if v is not None]
        row["Avg"] = float(np.mean(present)) if len(present) == len(SUBSET_COLUMNS) else None
        missing = dict(zip(group["label"], group["n_seeds"] - group[f"{metric}_n"]))
        row.update({f"n_nan {label}": int(missing.get(label, 0)) for label in SUBSET_COLUMNS})
        row["n_nan"] = int(sum(missing.values()))
        rows.append(row)
    columns = ["data", "dataset", "model", "display_name", "metric", "n_nan",
               *(f"n_nan {label}" for label in SUBSET_COLUMNS), *SUBSET_COLUMNS, "Avg"]
    return ordered_rows(pd.DataFrame(rows, columns=columns), model_order, ())


def nan_lines(frame: pd.DataFrame) -> List[str]:
    """One summary line per (dataset, model, metric) with NaN values in the evaluations of ``frame``."""
    lines = []
    for m in metrics_of(frame["dataset"].unique()):
        own = frame["dataset"].isin([d for d in set(frame["dataset"]) if m in dataset_metrics(d)])
        bad = frame[frame[m].astype(float).isna() & own]
        for (dataset, model), group in bad.groupby(["dataset", "model"], sort=False):
            total = int(((frame["dataset"] == dataset) & (frame["model"] == model)).sum())
            lines.append(f"note: {m} is NaN in {len(group)} of {total} evaluations of {model}/{dataset} (seeds "
                         f"{' '.join(map(str, sorted(group['seed'].unique())))}); its means use the valid "
                         f"seeds only, and cells built on fewer seeds are marked *")
    return lines


def rank_marks(values: Sequence[Optional[float]], lower_is_better: bool = False) -> List[str]:
    """"best" / "second" / "" per value (ties share a mark; None never ranks)."""
    distinct = sorted({v for v in values if v is not None}, reverse=not lower_is_better)
    marks = {v: name for v, name in zip(distinct, ("best", "second"))}
    return [marks.get(v, "") if v is not None else "" for v in values]


INCOMPLETE_MARK = "†"  # the console's twin of the LaTeX table's dagger


def incomplete_rows(per_cond: pd.DataFrame, conditions: Sequence, seeds: Sequence[int]) -> dict:
    """``{(dataset, model): what is missing}`` for every Table 1 row averaged over fewer of the
    requested intra-modal ``conditions`` (``grid.Condition``) or ``seeds`` than requested."""
    requested = [c for c in conditions if c.protocol == "intra"]
    wanted_seeds = [int(s) for s in seeds]
    intra = per_cond[per_cond["protocol"] == "intra"]
    out = {}
    for (dataset, model), group in intra.groupby(["dataset", "model"], sort=False):
        present = dict(zip(group["condition"], group["seeds"]))
        missing_conditions = [c.label for c in requested if c.key not in present]
        seed_gaps = {}  # seed -> the labels of the conditions it lacks
        for c in requested:
            if c.key in present:
                have = {int(s) for s in str(present[c.key]).split()}
                for seed in wanted_seeds:
                    if seed not in have:
                        seed_gaps.setdefault(seed, []).append(c.label)
        if not missing_conditions and not seed_gaps:
            continue
        n_present = len(requested) - len(missing_conditions)
        parts = [f"averaged over {n_present} of {len(requested)} conditions and "
                 f"{int(group['n_seeds'].min())} of {len(wanted_seeds)} seeds"]
        if missing_conditions:
            parts.append(f"no evaluation at {', '.join(missing_conditions)}")
        for seed, labels in sorted(seed_gaps.items()):
            where = "every condition" if len(labels) == n_present else ", ".join(labels)
            parts.append(f"seed {seed} missing at {where}")
        out[(dataset, model)] = "; ".join(parts)
    return out
