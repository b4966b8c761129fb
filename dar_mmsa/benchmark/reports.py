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
from .analysis import (AnalysisOptions, check_analysis, compare_to_reference, default_baseline, significance_note,
                       significant_cells)
from .claims import significance_lines
from .grid import Condition
from .importances import importance_means
from .learned import learned_lines, mean_predictor_maes
from .plan import Settings, WorkUnit
from .robustness import add_leads, robustness_table
from .store import ResultStore, read_json, write_atomic, write_json
from .tuning.provenance import caption_with_note, tuning_note

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
    incomplete: dict = field(default_factory=dict)  # (dataset, model) -> what its Table 1 row lacks
    tuning_note: str = ""  # which configs were tuned, on which budget (tuning.provenance)
    analysis: Optional[AnalysisOptions] = None
    comparison: object = None  # analysis.Comparison of the significance tests; None: fewer than 2 models
    learned: List[str] = field(default_factory=list)  # the summary's "learned?" lines (learned.py)


def _to_csv(frame: pd.DataFrame, path: Path) -> Path:
    write_atomic(path, frame.to_csv(index=False, float_format="%.6g").encode())
    return path


def conditions_label(conditions: Sequence[Condition]) -> str:
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
    the store. The tables of variant experiments are redone from their own manifests
    (:mod:`.experiment_reports`). ``analysis``: options overriding the stored ones (``compare``, ``bands``, ...).
    """
    say = say or (lambda message: print(message, file=sys.stderr))
    store = ResultStore(root)
    if not store.runs.is_dir():
        raise ConfigError(f"{store.root} holds no results store (no store/runs/): pass the folder a benchmark "
                          f"wrote, e.g. results/synthetic-quick")
    manifest = read_json(store.root / MANIFEST)
    from .experiment_reports import rebuild_experiment_reports

    experiments = rebuild_experiment_reports(store.root)
    if manifest is None and experiments:  # a folder of variant experiments only
        result = experiments[-1]
        result.summary = "\n\n".join(r.summary for r in experiments)
        return result
    options = dict((manifest or {}).get("analysis") or {})
    options.update({k: v for k, v in (analysis or {}).items() if v is not None})
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
    options = check_analysis({k: v for k, v in options.items() if k in AnalysisOptions.__dataclass_fields__}, models)
    result = build_reports(store, records, models=models, datasets=datasets, seeds=seeds, conditions=conditions,
                           synthetic=synthetic, with_reported=reported if with_reported is None else with_reported,
                           analysis=options, say=say)
    result.summary = summary_text(result, seeds)
    write_atomic(result.root / "summary.txt", (result.summary + "\n").encode())
    result.summary = "\n\n".join([result.summary, *(r.summary for r in experiments)])
    return result


def build_reports(store: ResultStore, records: Sequence[dict], *, models: Sequence[str], datasets: Sequence[str],
                  seeds: Sequence[int], conditions: Sequence[Condition], synthetic: bool, with_reported: bool,
                  analysis: AnalysisOptions, say) -> BenchmarkResult:
    from ..report import figures, latex, layout

    root = store.root
    frame = aggregate.records_frame(records)
    synthetic = synthetic or bool((frame["data"] == "synthetic").any())
    model_order, condition_order = list(models), [c.key for c in conditions]
    per_cond = aggregate.per_condition(frame, model_order, condition_order)
    result = BenchmarkResult(root, synthetic, frame, per_cond, None, None, analysis=analysis)
    files = [_to_csv(frame, root / "evaluations.csv")]
    intra = per_cond[per_cond["protocol"] == "intra"]
    intra_conditions = [c for c in conditions if c.protocol == "intra"]
    if len(intra):
        result.table1 = aggregate.table1(per_cond, model_order)
        result.incomplete = aggregate.incomplete_rows(per_cond, intra_conditions, seeds)
        trainings = [store.training(run_id) for run_id in frame["run_id"].unique()]
        result.learned = learned_lines(intra, mean_predictor_maes([t for t in trainings if t is not None]))
        files += [_to_csv(intra, root / "per_rate.csv"), _to_csv(result.table1, root / "table1.csv")]
        marked, note, leads = set(), "", None
        if len(model_order) >= 2:
            result.comparison = compare_to_reference(store, records, result.table1, intra_conditions, model_order,
                                                     analysis)
            result.significance, leads = result.comparison.significance, result.comparison.robustness_leads
            files.append(_to_csv(result.significance, root / "significance.csv"))
            marked = significant_cells(result.significance, result.table1)
            references = dict(zip(result.significance["dataset"], result.significance["reference_name"]))
            note = significance_note(analysis, {d: latex.escape(n) for d, n in references.items()})
        reported = latex.load_reported(datasets) if with_reported else None
        tex = latex.table1_latex(result.table1, synthetic=synthetic, conditions=conditions_label(intra_conditions),
                                 seeds=seeds, reported=reported, n_conditions=len(intra_conditions),
                                 significant=marked, significance_note=note)
        result.tuning_note = tuning_note(store, records)
        tex = caption_with_note(tex, result.tuning_note)
        write_atomic(root / "table1.tex", tex.encode())
        files.append(root / "table1.tex")
        baseline = analysis.baseline if analysis.baseline in model_order else default_baseline(model_order)
        result.robustness = add_leads(robustness_table(per_cond, baseline=baseline, fraction=analysis.fraction), leads)
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
    importances = importance_means(store, records, model_order, condition_order)
    if len(importances):
        files.append(_to_csv(importances, root / "importance_means.csv"))
    if any(f.suffix == ".tex" for f in files):
        files.append(layout.write_preview(root))
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
                     f"Acc/F1 in %" + (", Acc-2 and F1 as Has0/Non0" if (result.table1["dataset"] != "sims").any()
                                       else ""))
        header = f"{'dataset':8} {'model':32} {'Acc-7':>6} {'Acc-5':>6} {'Acc-2':>13} {'F1':>13} {'MAE':>6} {'Corr':>6}"
        sims = result.table1["dataset"] == "sims"
        if not sims.all():
            lines += [header, "-" * len(header)]
        for _, r in result.table1[~sims].iterrows():
            name = r["display_name"][:32]
            if (r["dataset"], r["model"]) in result.incomplete:
                name = f"{name[:30]} {aggregate.INCOMPLETE_MARK}"
            lines.append(f"{r['dataset']:8} {name:32} {_fmt_pct(r['Mult_acc_7']):>6} "
                         f"{_fmt_pct(r['Mult_acc_5']):>6} "
                         f"{_fmt_pct(r['Has0_acc_2']) + '/' + _fmt_pct(r['Non0_acc_2']):>13} "
                         f"{_fmt_pct(r['Has0_F1_score']) + '/' + _fmt_pct(r['Non0_F1_score']):>13} "
                         f"{r['MAE']:6.3f} {r['Corr']:6.3f}")
        if sims.any():  # CH-SIMS has MMSA's SIMS metrics instead
            header = f"{'dataset':8} {'model':32} {'Acc-5':>6} {'Acc-3':>6} {'Acc-2':>6} {'F1':>6} {'MAE':>6} {'Corr':>6}"
            lines += [header, "-" * len(header)]
        for _, r in result.table1[sims].iterrows():
            name = r["display_name"][:32]
            if (r["dataset"], r["model"]) in result.incomplete:
                name = f"{name[:30]} {aggregate.INCOMPLETE_MARK}"
            lines.append(f"{r['dataset']:8} {name:32} " + " ".join(
                f"{_fmt_pct(r[m]):>6}" for m in ("Mult_acc_5", "Mult_acc_3", "Mult_acc_2", "F1_score"))
                         + f" {r['MAE']:6.3f} {r['Corr']:6.3f}")
        names = dict(zip(zip(result.table1["dataset"], result.table1["model"]), result.table1["display_name"]))
        for (dataset, model), missing in result.incomplete.items():
            lines.append(f"{aggregate.INCOMPLETE_MARK} {names.get((dataset, model), model)} on {dataset}: {missing}")
        if result.tuning_note:
            lines.append(result.tuning_note)
    lines += result.learned
    if result.significance is not None:
        comparison = result.comparison
        lines += significance_lines(result.significance, result.analysis or AnalysisOptions(),
                                    chosen_on_test_set=bool(comparison and comparison.chosen_on_test_set))
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
