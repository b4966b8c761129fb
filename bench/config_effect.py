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

from dar_mmsa.benchmark.analysis import predictions_by_run, stack_predictions
from dar_mmsa.benchmark.multiple_testing import add_adjusted
from dar_mmsa.benchmark.significance import paired_bootstrap
from dar_mmsa.benchmark.store import ResultStore

PRIMARY = ("Non0_acc_2", "MAE")


def reported_runs(folder: Path) -> pd.DataFrame:
    """The intra-modal evaluations a folder's reports were built from (one dataset, one config per model)."""
    table = pd.read_csv(folder / "evaluations.csv")
    table = table[table["protocol"] == "intra"]
    if table["dataset"].nunique() > 1:
        raise ValueError(f"{folder}/evaluations.csv reports several datasets; compare folders of one dataset")
    hashes = table.groupby("model")["config_hash"].nunique()
    if (hashes > 1).any():
        raise ValueError(f"{folder}/evaluations.csv reports several configs of {list(hashes[hashes > 1].index)}; "
                         f"compare folders with one config per model")
    return table[["dataset", "model", "seed", "condition", "rate", "run_id", "config_hash"]]


def reported_predictions(folder: Path, runs: pd.DataFrame) -> dict:
    """{(dataset, model): {seed: {condition: columns}}} of the reported runs, read once per folder."""
    store = ResultStore(folder)
    reported = set(runs["run_id"])
    records = [r for r in store.evaluations() if r["run_id"] in reported]
    return predictions_by_run(store, records, sorted(set(runs["condition"])))


def stacked(folder: Path, by_seed: dict, seeds, conditions):
    """(test rows, labels, predictions (seeds, rates, N)) of one model, as the harness's own
    significance test stacks them; every run must hold the same test rows in the same order."""
    missing = [(s, c) for s in seeds for c in conditions if c not in by_seed.get(s, {})]
    if missing:
        raise ValueError(f"no stored predictions for seed {missing[0][0]} {missing[0][1]} in {folder}")
    first = by_seed[seeds[0]][conditions[0]]
    if any(not np.array_equal(by_seed[s][c]["index"], first["index"]) for s in seeds for c in conditions):
        raise ValueError(f"{folder} holds predictions for different test rows across runs")
    return first["index"], first["label"], stack_predictions(by_seed, seeds, conditions)


def config_effect(before: Path, after: Path, n_boot: int = 10000, seed: int = 0) -> pd.DataFrame:
    first, second = reported_runs(before), reported_runs(after)
    shared = sorted(set(first["model"]) & set(second["model"]))
    if not shared:
        raise ValueError(f"{before} and {after} share no model; compare two Table 1 runs of the same models")
    predictions_before, predictions_after = reported_predictions(before, first), reported_predictions(after, second)
    rows = []
    for model in shared:
        a, b = first[first["model"] == model], second[second["model"] == model]
        seeds = sorted(set(a["seed"]) & set(b["seed"]))
        rates = sorted(set(a["rate"]) & set(b["rate"]))
        if not seeds or not rates:
            raise ValueError(f"{before} and {after} share no seed or no rate of {model}; run both on the same seeds")
        conditions = [a[a["rate"] == r]["condition"].iloc[0] for r in rates]
        rows_a, labels_a, preds_a = stacked(before, predictions_before.get((a["dataset"].iloc[0], model), {}),
                                            seeds, conditions)
        rows_b, labels_b, preds_b = stacked(after, predictions_after.get((b["dataset"].iloc[0], model), {}),
                                            seeds, conditions)
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
