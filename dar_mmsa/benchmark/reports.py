"""Reports of a benchmark: CSVs, LaTeX tables, figures and the terminal summary, from the store."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

import pandas as pd

from . import aggregate
from .grid import Condition
from .plan import Settings, WorkUnit
from .store import write_atomic


@dataclass
class BenchmarkResult:
    """What a benchmark run produced; the DataFrames hold what this command asked for."""

    root: Path
    synthetic: bool
    evaluations: pd.DataFrame
    per_condition: pd.DataFrame
    table1: Optional[pd.DataFrame]
    inter: Optional[pd.DataFrame]
    files: List[Path] = field(default_factory=list)
    failures: List[str] = field(default_factory=list)
    trained: int = 0
    evaluated: int = 0
    summary: str = ""
    experiment: object = None  # experiments.Experiment of a variant experiment; None: Table 1


def _to_csv(frame: pd.DataFrame, path: Path) -> Path:
    write_atomic(path, frame.to_csv(index=False, float_format="%.6g").encode())
    return path


def _conditions_label(conditions: Sequence[Condition]) -> str:
    labels = [c.label for c in conditions]
    if all(c.rate is not None for c in conditions):
        return f"missing rate{'s' * (len(labels) > 1)} {', '.join(labels)}"
    return f"per-modality missing rates {'; '.join(labels)}"


def _stored_records(settings: Settings, planned: Sequence[WorkUnit]) -> list:
    """The stored evaluations of the planned runs under their conditions."""
    store, records = settings.store, []
    for p in planned:
        training = store.training(p.run.run_id)
        if training is None:
            continue
        for c in p.run.conditions:
            record = store.evaluation(p.run.run_id, c.key, training["training_id"])
            if record is not None:
                records.append(record)
    return records


def write_reports(settings: Settings, planned: Sequence[WorkUnit], *, with_reported: bool, say) -> BenchmarkResult:
    from ..report import figures, latex

    root = settings.store.root
    frame = aggregate.records_frame(_stored_records(settings, planned))
    synthetic = settings.synthetic or bool((frame["data"] == "synthetic").any())
    model_order, condition_order = settings.models, [c.key for c in settings.conditions]
    per_cond = aggregate.per_condition(frame, model_order, condition_order)
    result = BenchmarkResult(root, synthetic, frame, per_cond, None, None)
    files = [_to_csv(frame, root / "evaluations.csv")]
    intra = per_cond[per_cond["protocol"] == "intra"]
    intra_conditions = [c for c in settings.conditions if c.protocol == "intra"]
    if len(intra):
        result.table1 = aggregate.table1(per_cond, model_order)
        files += [_to_csv(intra, root / "per_rate.csv"), _to_csv(result.table1, root / "table1.csv")]
        reported = latex.load_reported(settings.datasets) if with_reported else None
        tex = latex.table1_latex(result.table1, synthetic=synthetic, conditions=_conditions_label(intra_conditions),
                                 seeds=settings.seeds, reported=reported)
        write_atomic(root / "table1.tex", tex.encode())
        files.append(root / "table1.tex")
    inter = per_cond[per_cond["protocol"].isin(["subset", "drop"])]
    if len(inter):
        result.inter = aggregate.inter_table(per_cond, "Non0_acc_2", model_order)
        files += [_to_csv(inter, root / "inter.csv"), _to_csv(result.inter, root / "inter_table.csv")]
        if len(result.inter):
            write_atomic(root / "inter_table.tex",
                         latex.inter_latex(result.inter, synthetic=synthetic, seeds=settings.seeds).encode())
            files.append(root / "inter_table.tex")
    if figures.matplotlib_available():
        files += figures.figure4(per_cond, root / "figure4", synthetic=synthetic)
        files += figures.inter_figure(per_cond, root / "figure_inter", synthetic=synthetic)
    elif len(per_cond):
        say("warning: matplotlib is not installed, so no figures were drawn (pip install dar_mmsa[plot])")
    result.files = files
    return result


def _fmt_pct(value) -> str:
    return "--" if value is None or pd.isna(value) else f"{100 * value:.2f}"


def summary_text(result: BenchmarkResult, seeds: Sequence[int]) -> str:
    """The terminal summary: Table 1 (and the inter-modal table) in plain text."""
    data = "SYNTHETIC data" if result.synthetic else "real data"
    lines = []
    if result.table1 is not None and len(result.table1):
        lines.append(f"Table 1 ({data}): mean over test conditions and seeds {', '.join(map(str, seeds))}; "
                     f"Acc/F1 in %, Acc-2 and F1 as Has0/Non0")
        header = f"{'dataset':8} {'model':32} {'Acc-7':>6} {'Acc-5':>6} {'Acc-2':>13} {'F1':>13} {'MAE':>6} {'Corr':>6}"
        lines += [header, "-" * len(header)]
        for _, r in result.table1.iterrows():
            lines.append(f"{r['dataset']:8} {r['display_name'][:32]:32} {_fmt_pct(r['Mult_acc_7']):>6} "
                         f"{_fmt_pct(r['Mult_acc_5']):>6} "
                         f"{_fmt_pct(r['Has0_acc_2']) + '/' + _fmt_pct(r['Non0_acc_2']):>13} "
                         f"{_fmt_pct(r['Has0_F1_score']) + '/' + _fmt_pct(r['Non0_F1_score']):>13} "
                         f"{r['MAE']:6.3f} {r['Corr']:6.3f}")
    if result.inter is not None and len(result.inter):
        cols = [*aggregate.SUBSET_COLUMNS, "Avg"]
        lines.append("")
        lines.append(f"Inter-modal ({data}): Acc-2 Non0 (%) with only these modalities present")
        header = f"{'dataset':8} {'model':32} " + " ".join(f"{c:>6}" for c in cols)
        lines += [header, "-" * len(header)]
        for _, r in result.inter.iterrows():
            cells = " ".join(f"{_fmt_pct(r[c]):>6}" for c in cols)
            lines.append(f"{r['dataset']:8} {r['display_name'][:32]:32} {cells}")
    if not lines:
        lines.append("no finished evaluations to report")
    lines += ["", f"{result.trained} training run(s) and {result.evaluated} evaluation(s) done now; "
                  f"outputs in {result.root}/"]
    return "\n".join(lines)


def write_experiment_reports(settings: Settings, planned: Sequence[WorkUnit], *, with_reported: bool) -> BenchmarkResult:
    """The tables of a variant experiment (``dar_mmsa.report.experiment_tables``); ``table1`` holds
    its rows (one per dataset x variant), ``experiment`` its name."""
    from ..report import experiment_tables

    frame = aggregate.records_frame(_stored_records(settings, planned))
    synthetic = settings.synthetic or bool((frame["data"] == "synthetic").any())
    intra = [c for c in settings.conditions if c.protocol == "intra"]
    table, per_cond, files = experiment_tables.write_experiment_tables(
        settings.store.root, settings.experiment, frame[frame["protocol"] == "intra"],
        {p.run.run_id: p.variant for p in planned}, settings.models, [c.key for c in intra], synthetic=synthetic,
        conditions=_conditions_label(intra) if intra else "conditions", seeds=settings.seeds,
        with_reported=with_reported)
    return BenchmarkResult(settings.store.root, synthetic, frame, per_cond, table, None, files=files,
                           experiment=settings.experiment)


def experiment_summary_text(result: BenchmarkResult) -> str:
    from ..report.experiment_tables import experiment_summary

    lines = experiment_summary(result.experiment, result.table1, result.per_condition, synthetic=result.synthetic,
                               seeds=sorted(set(result.evaluations["seed"])) or ["-"])
    lines += ["", f"{result.trained} training run(s) and {result.evaluated} evaluation(s) done now; "
                  f"outputs in {result.root}/"]
    return "\n".join(lines)
