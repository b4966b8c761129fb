#!/usr/bin/env python
"""Per-epoch CLUB diagnostics of DAR runs, from a results store, as a Markdown table.

Each DAR training record (``store/runs/*/training.json``) logs, per epoch and next to every loss term,
the per-dimension variance of H_com and H_spec, their correlation and q_theta's mean variance (means
over modalities; ``docs/models.md``, "CLUB"). This prints them for the chosen epochs, averaged over
the seeds of each variant (runs grouped by display name, ``club_input`` and ``use_diff_loss``), so
an evidence summary can say whether L_diff fell because the features decoupled or because they
shrank.

Usage: python tools/club_diagnostics.py FOLDER [--epochs 1 5 10 20 30] [--split train|valid]
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from statistics import mean

COLUMNS = (("task", "L_task"), ("diff", "L_diff"), ("com_var", "var H_com"), ("spec_var", "var H_spec"),
           ("com_spec_corr", "corr(H_com, H_spec)"), ("q_var", "q_theta variance"))


def dar_records(folder: Path):
    """Every DAR training record under ``folder`` (a results folder or a store)."""
    for path in sorted(folder.rglob("training.json")):
        record = json.loads(path.read_text())
        if record.get("model") == "dar" and record.get("epochs", {}).get("train"):
            yield record


def variant_of(record: dict) -> str:
    args = record["args"]
    parts = [record.get("display_name", "DAR"), f"club_input={args.get('club_input', 'raw')}"]
    if not args.get("use_diff_loss", True):
        parts.append("no L_diff")
    return ", ".join(parts)


def table(folder: Path, epochs, split: str) -> str:
    grouped = defaultdict(list)
    for record in dar_records(folder):
        grouped[variant_of(record)].append(record)
    if not grouped:
        raise SystemExit(f"error: no DAR training record under {folder}: give a results folder with a store")
    header = ["variant", "seeds", "epoch"] + [label for _, label in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for variant, records in sorted(grouped.items()):
        seeds = ",".join(str(r["seed"]) for r in sorted(records, key=lambda r: r["seed"]))
        for epoch in epochs:
            rows = [r["epochs"][split][epoch - 1]["terms"] for r in records if len(r["epochs"][split]) >= epoch]
            if not rows:
                continue
            cells = [f"{mean(row[key] for row in rows):.3f}" if all(key in row for row in rows) else "-"
                     for key, _ in COLUMNS]
            lines.append("| " + " | ".join([variant, f"{seeds} ({len(rows)})", str(epoch)] + cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 5, 10, 20, 30])
    parser.add_argument("--split", choices=("train", "valid"), default="train")
    args = parser.parse_args(argv)
    print(table(args.folder, args.epochs, args.split))
    return 0


if __name__ == "__main__":
    sys.exit(main())
