"""Reports of a benchmark: CSVs, LaTeX tables, figures and the terminal summary, from the store.

``write_reports`` (after a run) and ``rebuild_reports`` (``run_benchmark.py --report-only``: from a
results folder alone) both go through ``build_reports``; nothing here trains or evaluates.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple

import pandas as pd

from ..errors import ConfigError
from . import aggregate
from .analysis import AVERAGE, AnalysisOptions, default_baseline, significance_note, significance_table, significant_cells
from .grid import Condition
from .plan import Settings, WorkUnit
from .robustness import robustness_table
from .store import ResultStore, read_json, write_atomic, write_json

SHORT_NAMES = {"Mult_acc_7": "Acc-7", "Mult_acc_5": "Acc-5", "Has0_acc_2": "Acc-2 Has0", "Non0_acc_2": "Acc-2 Non0",
               "Has0_F1_score": "F1 Has0", "Non0_F1_score": "F1 Non0", "MAE": "MAE", "Corr": "Corr"}
MANIFEST = "report.json"  # what the last command reported: lets rebuild_reports redo it


@dataclass
class BenchmarkResult:
    """What a benchmark run produced; the DataFrames hold what this command asked for."""

    root: Path
    synthetic: bool
    evaluations: pd.DataFrame
    per_condition: pd.DataFrame
    table1: Optional[pd.DataFrame]
    inter: Optional[pd.DataFrame]
    significance: Optional[pd.DataFrame] = None
    robustness: Optional[pd.DataFrame] = None
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


def collect_records(store: ResultStore, runs: Sequence[Tuple[str, Sequence[str]]]) -> List[dict]:
    """The current evaluation records of (run id, condition keys) pairs."""
    records = []
    for run_id, keys in runs:
        training = store.training(run_id)
        if training is None:
            continue
        for key in keys:
            record = store.evaluation(run_id, key, training["training_id"])
            if record is not None:
                records.append(record)
    return records


def write_reports(settings: Settings, planned: Sequence[WorkUnit], *, with_reported: bool, say,
                  analysis: Optional[AnalysisOptions] = None) -> BenchmarkResult:
    """Every report of the command's runs and conditions, and the manifest ``report.json`` that
    lets :func:`rebuild_reports` redo them later without the command."""
    analysis = analysis or AnalysisOptions()
    runs = [(p.run.run_id, [c.key for c in p.run.conditions]) for p in planned]
    manifest = {"kind": "report-manifest", "models": list(settings.models), "datasets": list(settings.datasets),
                "seeds": list(settings.seeds), "conditions": [c.to_record() for c in settings.conditions],
                "runs": [{"run_id": r, "conditions": k} for r, k in runs], "synthetic": bool(settings.synthetic),
                "with_reported": bool(with_reported), "analysis": analysis.to_record()}
    write_json(settings.store.root / MANIFEST, manifest)
    return build_reports(settings.store, collect_records(settings.store, runs), models=settings.models,
                         datasets=settings.datasets, seeds=settings.seeds, conditions=settings.conditions,
                         synthetic=settings.synthetic, with_reported=with_reported, analysis=analysis, say=say)


def rebuild_reports(root, *, analysis: Optional[Mapping] = None, with_reported: Optional[bool] = None,
                    say=None) -> BenchmarkResult:
    """Redo every report of a results folder from its store, training and evaluating nothing.

    The runs and conditions are those of the last command that wrote reports there
    (``report.json``); without one (a folder from an older version), every current evaluation in
    the store. ``analysis``: options overriding the stored ones (``compare``, ``bands``, ...).
    """
    say = say or (lambda message: print(message, file=sys.stderr))
    store = ResultStore(root)
    if not store.runs.is_dir():
        raise ConfigError(f"{store.root} holds no results store (no store/runs/): pass the folder a benchmark "
                          f"wrote, e.g. results/synthetic-quick")
    manifest = read_json(store.root / MANIFEST)
    options = dict((manifest or {}).get("analysis") or {})
    options.update({k: v for k, v in (analysis or {}).items() if v is not None})
    options = AnalysisOptions(**{k: v for k, v in options.items() if k in AnalysisOptions.__dataclass_fields__})
    if manifest is not None:
        runs = [(r["run_id"], r["conditions"]) for r in manifest["runs"]]
        records = collect_records(store, runs)
        conditions = [Condition.from_record(c) for c in manifest["conditions"]]
        models, datasets, seeds = manifest["models"], manifest["datasets"], manifest["seeds"]
        synthetic, reported = manifest["synthetic"], manifest["with_reported"]
    else:
        records = list(store.evaluations())
        conditions = list({r["condition"]["key"]: Condition.from_record(r["condition"]) for r in records}.values())
        conditions.sort(key=lambda c: (c.protocol, c.key))
        models = list(dict.fromkeys(r["model"] for r in records))
        datasets = list(dict.fromkeys(r["dataset"] for r in records))
        seeds = sorted({int(r["seed"]) for r in records})
        synthetic, reported = any(r["data"]["synthetic"] for r in records), False
    if not records:
        raise ConfigError(f"{store.root} holds no finished evaluations to report")
    if options.compare is not None and options.compare not in models:
        raise ConfigError(f"--compare {options.compare}: not a model of {store.root} ({', '.join(models)})")
    result = build_reports(store, records, models=models, datasets=datasets, seeds=seeds, conditions=conditions,
                           synthetic=synthetic, with_reported=reported if with_reported is None else with_reported,
                           analysis=options, say=say)
    result.summary = summary_text(result, seeds)
    write_atomic(result.root / "summary.txt", (result.summary + "\n").encode())
    return result


def build_reports(store: ResultStore, records: Sequence[dict], *, models: Sequence[str], datasets: Sequence[str],
                  seeds: Sequence[int], conditions: Sequence[Condition], synthetic: bool, with_reported: bool,
                  analysis: AnalysisOptions, say) -> BenchmarkResult:
    from ..report import figures, latex

    root = store.root
    frame = aggregate.records_frame(records)
    synthetic = synthetic or bool((frame["data"] == "synthetic").any())
    model_order, condition_order = list(models), [c.key for c in conditions]
    per_cond = aggregate.per_condition(frame, model_order, condition_order)
    result = BenchmarkResult(root, synthetic, frame, per_cond, None, None)
    files = [_to_csv(frame, root / "evaluations.csv")]
    intra = per_cond[per_cond["protocol"] == "intra"]
    intra_conditions = [c for c in conditions if c.protocol == "intra"]
    if len(intra):
        result.table1 = aggregate.table1(per_cond, model_order)
        files += [_to_csv(intra, root / "per_rate.csv"), _to_csv(result.table1, root / "table1.csv")]
        marked, note = set(), ""
        if len(model_order) >= 2:
            result.significance = significance_table(store, records, result.table1, intra_conditions, model_order,
                                                     analysis)
            files.append(_to_csv(result.significance, root / "significance.csv"))
            marked = significant_cells(result.significance, result.table1)
            references = dict(zip(result.significance["dataset"], result.significance["reference_name"]))
            note = significance_note(analysis, {d: latex.escape(n) for d, n in references.items()})
        reported = latex.load_reported(datasets) if with_reported else None
        tex = latex.table1_latex(result.table1, synthetic=synthetic, conditions=_conditions_label(intra_conditions),
                                 seeds=seeds, reported=reported, n_conditions=len(intra_conditions),
                                 significant=marked, significance_note=note)
        write_atomic(root / "table1.tex", tex.encode())
        files.append(root / "table1.tex")
        baseline = analysis.baseline if analysis.baseline in model_order else default_baseline(model_order)
        result.robustness = robustness_table(per_cond, baseline=baseline, fraction=analysis.fraction)
        if len(result.robustness):
            files.append(_to_csv(result.robustness, root / "robustness.csv"))
            write_atomic(root / "robustness.tex", latex.robustness_latex(result.robustness, synthetic=synthetic,
                                                                         seeds=seeds).encode())
            files.append(root / "robustness.tex")
    inter = per_cond[per_cond["protocol"].isin(["subset", "drop"])]
    if len(inter):
        result.inter = aggregate.inter_table(per_cond, "Non0_acc_2", model_order)
        files += [_to_csv(inter, root / "inter.csv"), _to_csv(result.inter, root / "inter_table.csv")]
        if len(result.inter):
            write_atomic(root / "inter_table.tex",
                         latex.inter_latex(result.inter, synthetic=synthetic, seeds=seeds).encode())
            files.append(root / "inter_table.tex")
    if figures.matplotlib_available():
        files += figures.figure4(per_cond, root / "figure4", synthetic=synthetic, bands=analysis.bands)
        files += figures.inter_figure(per_cond, root / "figure_inter", synthetic=synthetic, bands=analysis.bands)
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
    if result.significance is not None and len(result.significance):
        lines.append("")
        lines.append("Paired bootstrap on the Table 1 average (95 %; significance.csv): significant leads of the reference")
        average = result.significance[result.significance["condition"] == AVERAGE]
        for (dataset, reference, model), block in average.groupby(["dataset", "reference_name", "display_name"],
                                                                  sort=False):
            won = [SHORT_NAMES.get(m, m) for m in block.loc[block["significant"] & (block["lead"] > 0), "metric"]]
            lost = [SHORT_NAMES.get(m, m) for m in block.loc[block["significant"] & (block["lead"] < 0), "metric"]]
            lines.append(f"{dataset:8} {reference[:20]} vs {model[:20]}: better on {', '.join(won) or 'none'}"
                         + (f"; worse on {', '.join(lost)}" if lost else ""))
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
    if len(result.evaluations):
        lines += aggregate.nan_lines(result.evaluations)
    lines += ["", f"{result.trained} training run(s) and {result.evaluated} evaluation(s) done now; "
                  f"outputs in {result.root}/"]
    return "\n".join(lines)


def write_experiment_reports(settings: Settings, planned: Sequence[WorkUnit], *, with_reported: bool) -> BenchmarkResult:
    """The tables of a variant experiment (``dar_mmsa.report.experiment_tables``); ``table1`` holds
    its rows (one per dataset x variant), ``experiment`` its name."""
    from ..report import experiment_tables

    frame = aggregate.records_frame(collect_records(settings.store, [(p.run.run_id, [c.key for c in p.run.conditions]) for p in planned]))
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
