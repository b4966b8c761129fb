#!/usr/bin/env python
"""Bring a results folder's LaTeX tables to the current layout without its results store.

    python tools/tables_from_csv.py RESULTS_DIR [RESULTS_DIR ...]

``run_benchmark.py --report-only`` rebuilds every report from the store; committed folders have
no store, only their CSVs. For each ``*.tex`` table of the folder:

* without ``\\multirow`` it is *re-placed*: its caption, label, column separation and tabular are
  kept as they are and :func:`dar_mmsa.report.layout.float_table` chooses its float again;
* with ``\\multirow`` (an older writer's header) it is written again by the current writer from the
  CSVs: ``table1.tex`` from ``table1.csv`` and ``per_rate.csv`` (+ ``significance.csv``,
  ``report.json``), an experiment's ``<stem>.tex`` (``table2_*``, ``table3_*``, ``recipe``) from its
  per-seed ``<stem>_evaluations.csv`` aggregated again (MMSA's metrics have 4 decimals, so nothing
  is lost) when that holds the rows of ``<stem>.csv``, else from ``<stem>.csv`` (6 significant
  digits). A table keeps the paper's reported rows when the file it replaces had them.

Ends by writing the folder's ``tables.tex``.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from dar_mmsa.benchmark import aggregate
from dar_mmsa.benchmark.analysis import AnalysisOptions, significance_note, significant_cells
from dar_mmsa.benchmark.experiments import get_experiment, select_variants
from dar_mmsa.benchmark.grid import Condition
from dar_mmsa.benchmark.reports import conditions_label
from dar_mmsa.benchmark.store import write_atomic
from dar_mmsa.report import latex, layout
from dar_mmsa.report.experiment_tables import experiment_latex, experiment_table, load_reported

EXPERIMENT_OF_PREFIX = {"table2_": "ablation", "table3_": "train-rate", "recipe": "recipe"}


def replaced(tex: str) -> str:
    """A table file with its caption, label, column separation and tabular kept, placed by the layout rule."""
    lines = tex.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(r"\begin{tabular}"))
    end = next(i for i, line in enumerate(lines) if line.startswith(r"\end{tabular}"))
    caption = re.search(r"^\\caption\{(.*)\}$", tex, re.M).group(1)
    label = re.search(r"^\\label\{(.*)\}$", tex, re.M).group(1)
    sep = re.search(r"\\setlength\{\\tabcolsep\}\{([\d.]+)pt\}", tex)
    return layout.float_table(lines[start:end + 1], caption=caption, label=label,
                              tabcolsep_pt=float(sep.group(1)) if sep else 6.0)


def seeds_of(per_rate: pd.DataFrame):
    return sorted({int(s) for text in per_rate["seeds"].astype(str) for s in text.split()})


def conditions_of(per_rate: pd.DataFrame) -> str:
    """The caption's description of the intra-modal test conditions of a per-rate CSV."""
    intra = per_rate[per_rate["protocol"] == "intra"].drop_duplicates("condition")
    rates = [None if pd.isna(r) else r for r in intra["rate"]]
    return conditions_label([SimpleNamespace(label=str(lab), rate=r) for lab, r in zip(intra["label"], rates)])


def table1_tex(folder: Path, had_reported: bool) -> str:
    table = pd.read_csv(folder / "table1.csv")
    per_rate = pd.read_csv(folder / "per_rate.csv")
    manifest = json.loads((folder / "report.json").read_text()) if (folder / "report.json").is_file() else None
    if manifest:
        intra = [c for c in map(Condition.from_record, manifest["conditions"]) if c.protocol == "intra"]
        conditions, n_conditions, seeds = conditions_label(intra), len(intra), manifest["seeds"]
    else:
        conditions, seeds = conditions_of(per_rate), seeds_of(per_rate)
        n_conditions = per_rate.loc[per_rate["protocol"] == "intra", "condition"].nunique()
    marked, note = set(), ""
    if (folder / "significance.csv").is_file():
        significance = pd.read_csv(folder / "significance.csv")
        stored = (manifest or {}).get("analysis") or {}
        options = AnalysisOptions(**{k: v for k, v in stored.items() if k in AnalysisOptions.__dataclass_fields__})
        marked = significant_cells(significance, table)
        references = dict(zip(significance["dataset"], significance["reference_name"]))
        note = significance_note(options, {d: latex.escape(n) for d, n in references.items()})
    reported = latex.load_reported(list(table["dataset"].unique())) if had_reported else None
    return latex.table1_latex(table, synthetic=bool((table["data"] == "synthetic").any()), conditions=conditions,
                              seeds=seeds, reported=reported, n_conditions=n_conditions, significant=marked,
                              significance_note=note)


def same_rows(recomputed: pd.DataFrame, written: pd.DataFrame) -> bool:
    """Whether a table aggregated again has the rows and (to the CSV's 6 digits) the values of the CSV."""
    metrics = list(aggregate.METRICS)
    if list(recomputed["model"]) != list(written["model"]):
        return False
    new, old = recomputed[metrics].to_numpy(float), written[metrics].to_numpy(float)
    return bool(((abs(new - old) <= 1e-5 * abs(old) + 1e-9) | (pd.isna(new) & pd.isna(old))).all())


def experiment_tex(folder: Path, stem: str, had_reported: bool) -> str:
    name = next(n for prefix, n in EXPERIMENT_OF_PREFIX.items() if stem.startswith(prefix))
    table = pd.read_csv(folder / f"{stem}.csv")
    per_rate = pd.read_csv(folder / f"{stem}_per_rate.csv")
    if (folder / f"{stem}_evaluations.csv").is_file():
        frame = pd.read_csv(folder / f"{stem}_evaluations.csv")
        _, recomputed = experiment_table(frame[frame["protocol"] == "intra"], list(table["model"]),
                                         list(dict.fromkeys(per_rate["condition"])))
        table = recomputed if same_rows(recomputed, table) else table
    experiment = select_variants(get_experiment(name), list(dict.fromkeys(m.split(":", 1)[1] for m in table["model"])))
    reported = load_reported(experiment, list(table["dataset"].unique())) if had_reported else None
    return experiment_latex(table, experiment, synthetic=bool((table["data"] == "synthetic").any()),
                            conditions=conditions_of(per_rate), seeds=seeds_of(per_rate), reported=reported)


def rewrite(folder: Path) -> list:
    """Bring every table of ``folder`` to the current layout (see the module docstring); returns the files written."""
    written = []
    for path in layout.table_files(folder):
        tex = path.read_text()
        if r"\multirow" not in tex:
            text = replaced(tex)
        elif path.name == "table1.tex":
            text = table1_tex(folder, "(reported)" in tex)
        elif any(path.stem.startswith(prefix) for prefix in EXPERIMENT_OF_PREFIX):
            text = experiment_tex(folder, path.stem, "(reported)" in tex)
        else:
            raise SystemExit(f"error: {path} has \\multirow and no CSV this tool can write it from")
        write_atomic(path, text.encode())
        written.append(path)
    return written + [layout.write_preview(folder)]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    for folder in map(Path, argv):
        if not folder.is_dir():
            print(f"error: {folder} is not a folder: pass a results folder, e.g. results/synthetic-quick",
                  file=sys.stderr)
            return 2
        for path in rewrite(folder):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
