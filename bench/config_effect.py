"""How much did a change of config (tuned against default) move each model's Table 1?

Reads two finished results folders of the same data, test split and seeds (for example
``results/dar-evidence-scale0.2`` at the defaults and ``results/tuned-table1-scale0.2`` with
``--config tuned_config.json``), takes for every model in both the runs each folder's
``evaluations.csv`` reports, and runs the harness's paired bootstrap (``significance.paired_bootstrap``:
test samples and training seeds resampled, the same draws for both configs) of the second folder's
config against the first's, at every intra-modal rate and on the Table 1 average. The primary family
is Acc-2 Non0 and MAE on the average for every model (Holm); every other row is exploratory (BH).
A positive lead means the second folder's config is better.

Example::

    python bench/config_effect.py results/dar-evidence-scale0.2 results/tuned-table1-scale0.2 \\
        --out results/tune-evidence-scale0.2/tuning_effect.csv
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from dar_mmsa.benchmark.multiple_testing import add_adjusted
from dar_mmsa.benchmark.predictions import read_predictions
from dar_mmsa.benchmark.significance import paired_bootstrap

PRIMARY = ("Non0_acc_2", "MAE")


def reported_runs(folder: Path) -> pd.DataFrame:
    """The intra-modal evaluations a folder's reports were built from: model, seed, condition, rate, run_id."""
    table = pd.read_csv(folder / "evaluations.csv")
    table = table[table["protocol"] == "intra"]
    hashes = table.groupby("model")["config_hash"].nunique()
    if (hashes > 1).any():
        raise ValueError(f"{folder}/evaluations.csv reports several configs of {list(hashes[hashes > 1].index)}; "
                         f"compare folders with one config per model")
    return table[["model", "seed", "condition", "rate", "run_id", "config_hash"]]


def stacked_predictions(folder: Path, runs: pd.DataFrame, seeds, conditions):
    """(labels (N,), predictions (seeds, rates, N)) of one model, rows in test-split order."""
    index = runs.set_index(["seed", "condition"])["run_id"]
    labels, stack = None, []
    for seed in seeds:
        row = []
        for condition in conditions:
            columns = read_predictions(folder / "store" / "runs" / index[(seed, condition)] / "predictions"
                                       / f"{condition}.npz")
            if columns is None:
                raise ValueError(f"no stored predictions for {index[(seed, condition)]} {condition} in {folder}")
            order = np.argsort(columns["index"])
            if labels is None:
                labels = (columns["index"][order], columns["label"][order])
            elif not np.array_equal(labels[0], columns["index"][order]):
                raise ValueError(f"{folder} holds predictions for different test rows across runs")
            row.append(columns["prediction"][order])
        stack.append(np.stack(row))
    return labels, np.stack(stack)


def config_effect(before: Path, after: Path, n_boot: int = 10000, seed: int = 0) -> pd.DataFrame:
    first, second = reported_runs(before), reported_runs(after)
    shared = sorted(set(first["model"]) & set(second["model"]))
    if not shared:
        raise ValueError(f"{before} and {after} share no model; compare two Table 1 runs of the same models")
    rows = []
    for model in shared:
        a, b = first[first["model"] == model], second[second["model"] == model]
        seeds = sorted(set(a["seed"]) & set(b["seed"]))
        rates = sorted(set(a["rate"]) & set(b["rate"]))
        if not seeds or not rates:
            raise ValueError(f"{before} and {after} share no seed or no rate of {model}; run both on the same seeds")
        conditions = [a[a["rate"] == r]["condition"].iloc[0] for r in rates]
        (rows_a, labels_a), preds_a = stacked_predictions(before, a, seeds, conditions)
        (rows_b, labels_b), preds_b = stacked_predictions(after, b, seeds, conditions)
        if not (np.array_equal(rows_a, rows_b) and np.allclose(labels_a, labels_b)):
            raise ValueError(f"{before} and {after} have different test samples for {model}")
        leads = paired_bootstrap(labels_a, preds_b, preds_a, n_boot=n_boot, seed=seed)
        leads.insert(0, "model", model)
        leads["rate"] = [rates[i] if i >= 0 else np.nan for i in leads.pop("rate_index")]
        leads["seeds"] = " ".join(map(str, seeds))
        leads["config_before"], leads["config_after"] = a["config_hash"].iloc[0][:12], b["config_hash"].iloc[0][:12]
        rows.append(leads)
    table = pd.concat(rows, ignore_index=True).rename(columns={"reference_value": "value_after",
                                                               "model_value": "value_before"})
    primary = table["rate"].isna() & table["metric"].isin(PRIMARY)
    table["family"] = np.where(primary, "primary", "exploratory")
    return add_adjusted(table, groups=["family"], primary=primary)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="results folder of the first config (e.g. the defaults)")
    parser.add_argument("after", type=Path, help="results folder of the second config (e.g. the tuned one)")
    parser.add_argument("--out", type=Path, help="CSV to write (default: print only)")
    parser.add_argument("--bootstraps", type=int, default=10000)
    args = parser.parse_args(argv)
    for folder in (args.before, args.after):
        if not (folder / "evaluations.csv").is_file():
            print(f"error: {folder} has no evaluations.csv; pass a results folder of a finished Table 1 run",
                  file=sys.stderr)
            return 2
    try:
        table = config_effect(args.before, args.after, n_boot=args.bootstraps)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        table.to_csv(args.out, index=False, float_format="%.6g")
    shown = table[table["family"] == "primary"]
    for _, r in shown.iterrows():
        print(f"{r['model']:6s} {r['metric']:11s} before {r['value_before']:.4f} after {r['value_after']:.4f} "
              f"lead {r['lead']:+.4f} [{r['lead_low']:+.4f}, {r['lead_high']:+.4f}] p_Holm {r['p_holm_primary']:.3g}")
    hits = table[(table["family"] == "exploratory") & (table["q_bh"] <= 0.05)]
    print(f"exploratory rows with BH q <= 0.05: {len(hits)} of {int((table['family'] == 'exploratory').sum())}")
    for _, r in hits.iterrows():
        where = "average" if np.isnan(r["rate"]) else f"r = {r['rate']:g}"
        print(f"  {r['model']:6s} {r['metric']:13s} {where:8s} lead {r['lead']:+.4f} q {r['q_bh']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
