"""Reports of the variant experiments (Tables 2 and 3, recipe, CLUB input) and their manifests.

``write_experiment_reports`` (after a run) writes ``<stem>_report.json`` beside the tables: the
experiment, its variants and each run's variant and conditions. ``rebuild_experiment_reports`` redoes
every experiment table of a results folder from those manifests and the store alone, so
``run_benchmark.py --report-only`` rebuilds them as it rebuilds Table 1.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from . import aggregate
from .experiments import get_experiment, select_variants
from .grid import Condition
from .plan import Settings, WorkUnit
from .reports import BenchmarkResult, collect_records, conditions_label
from .store import ResultStore, read_json, write_atomic, write_json

MANIFEST_SUFFIX = "_report.json"


def write_experiment_reports(settings: Settings, planned: Sequence[WorkUnit], *, with_reported: bool) -> BenchmarkResult:
    """The tables of a variant experiment (``dar_mmsa.report.experiment_tables``) and its manifest;
    ``table1`` of the result holds its rows (one per dataset x variant)."""
    intra = [c for c in settings.conditions if c.protocol == "intra"]
    runs = [{"run_id": p.run.run_id, "conditions": [c.key for c in p.run.conditions], "variant": p.variant}
            for p in planned]
    manifest = {"kind": "experiment-manifest", "experiment": settings.experiment.name,
                "variants": [v.key for v in settings.experiment.variants], "models": list(settings.models),
                "seeds": list(settings.seeds), "conditions": [c.to_record() for c in intra], "runs": runs,
                "synthetic": bool(settings.synthetic), "with_reported": bool(with_reported)}
    write_json(settings.store.root / f"{settings.experiment.stem}{MANIFEST_SUFFIX}", manifest)
    return _build(settings.store, manifest)


def rebuild_experiment_reports(root) -> List[BenchmarkResult]:
    """Every experiment table of a results folder, from its manifests and store (nothing trained)."""
    store = ResultStore(root)
    results = []
    for path in sorted(Path(store.root).glob(f"*{MANIFEST_SUFFIX}")):
        manifest = read_json(path)
        if manifest is None or manifest.get("kind") != "experiment-manifest":
            continue
        result = _build(store, manifest)
        result.summary = experiment_summary_text(result)
        write_atomic(result.root / f"{result.experiment.stem}_summary.txt", (result.summary + "\n").encode())
        results.append(result)
    return results


def _build(store: ResultStore, manifest: dict) -> BenchmarkResult:
    from ..report import experiment_tables, layout

    experiment = select_variants(get_experiment(manifest["experiment"]), manifest["variants"])
    runs = manifest["runs"]
    frame = aggregate.records_frame(collect_records(store, [(r["run_id"], r["conditions"]) for r in runs]))
    synthetic = manifest["synthetic"] or bool((frame["data"] == "synthetic").any())
    intra = [Condition.from_record(c) for c in manifest["conditions"]]
    table, per_cond, files = experiment_tables.write_experiment_tables(
        store.root, experiment, frame[frame["protocol"] == "intra"], {r["run_id"]: r["variant"] for r in runs},
        tuple(manifest["models"]), [c.key for c in intra], synthetic=synthetic,
        conditions=conditions_label(intra) if intra else "conditions", seeds=tuple(manifest["seeds"]),
        with_reported=manifest["with_reported"])
    if any(f.suffix == ".tex" for f in files):
        files.append(layout.write_preview(store.root))
    return BenchmarkResult(store.root, synthetic, frame, per_cond, table, None, files=files, experiment=experiment)


def experiment_summary_text(result: BenchmarkResult) -> str:
    from ..report.experiment_tables import experiment_summary

    lines = experiment_summary(result.experiment, result.table1, result.per_condition, synthetic=result.synthetic,
                               seeds=sorted(set(result.evaluations["seed"])) or ["-"])
    lines += ["", f"{result.trained} training run(s) and {result.evaluated} evaluation(s) done now; "
                  f"outputs in {result.root}/"]
    return "\n".join(lines)


__all__ = ["write_experiment_reports", "rebuild_experiment_reports", "experiment_summary_text"]
