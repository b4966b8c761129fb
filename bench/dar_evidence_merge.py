"""Tables 1-3 of the DAR evidence (issue 12) from runs made in several stores, by pooling their CSVs.

The evidence ran in several batches on machines that did not share a results store (a later
machine no longer had the earlier store; checkpoints are not committed). What every batch kept is
its report CSVs:

* ``evaluations.csv``, ``<stem>_evaluations.csv`` and the copies kept as
  ``<stem>_<variants>_<seeds>_evaluations.csv``: one row per (run, test condition), per seed;
* ``table2_wo-diff_3seeds*.csv``: the 3-seed "w/o L_diff" row, whose seeds 1112/1113 exist only as
  per-rate means and seed spreads (their per-seed rows were not written out).

This script pools them with the library's own aggregation (``experiment_table``,
``experiment_latex``, ``experiment_summary``), so each row is averaged exactly as
``run_benchmark.py --experiment ...`` averages it:

* per-seed rows are pooled, one row per (run id, condition); the same run id in two files must
  carry the same numbers, and the run ids of one (variant, seed) must agree (same config hash);
* a variant whose per-seed rows cover fewer seeds than an aggregated file keeps the aggregated
  per-rate means and seed spread instead;
* Table 1's ``dar`` rows are Table 2's "full" (the same config, so the same run id);
* every row says its seeds (``seeds`` column; LaTeX rows on fewer than three seeds are marked).

Table 1 files (``evaluations.csv`` without a ``variant`` column: DAR and MISA of one store, LNLN of
another) are pooled, every model, into ``table1_merged.*`` with the library's Table 1 aggregation and
LaTeX, plus each model's per-seed averages (``table1_merged_per_seed.csv``). The paired bootstrap of
``significance.csv`` needs the stored predictions, so it is not redone here.

It also writes ``<stem>_paired.csv``: per variant and seed, the variant's average minus the full
model's on the same seed (Acc-2 Non0 in points, MAE), where both have per-seed rows.

Usage: python bench/dar_evidence_merge.py OUT_DIR CSV [CSV ...]
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

from dar_mmsa.benchmark import aggregate
from dar_mmsa.benchmark.experiments import get_experiment
from dar_mmsa.benchmark.store import write_atomic
from dar_mmsa.report import latex
from dar_mmsa.report.experiment_tables import experiment_latex, experiment_summary, experiment_table, load_reported

EXPERIMENT_OF_STEM = {"table2_ablation": "ablation", "table3_train_rate": "train-rate"}
FULL_SEEDS = 3


def per_seed_rows(paths):
    """Per-seed evaluation rows tagged with their experiment (Table 1's ``dar`` rows as 'full')."""
    frames = []
    for path in paths:
        frame = pd.read_csv(path)
        if "variant" not in frame:  # a Table 1 evaluations.csv
            frame = frame[frame["model"] == "dar"].assign(variant="full", model="dar:full", display_name="full")
            frame["experiment"] = "ablation"
        else:  # the variant keys of Table 2 and Table 3 are disjoint
            ablation = {v.key for v in get_experiment("ablation").variants}
            frame["experiment"] = ["ablation" if v in ablation else "train-rate" for v in frame["variant"]]
        frames.append(frame.assign(source=Path(path).name))
    return one_row_per_run_condition(pd.concat(frames, ignore_index=True))


def one_row_per_run_condition(pooled):
    """Pooled rows, deduplicated; refuses a run whose rows differ between files, or a (model, seed)
    with two run ids (two configs under one name)."""
    metrics = list(aggregate.METRICS)
    for (run_id, condition), group in pooled.groupby(["run_id", "condition"]):
        if len(group) > 1 and (group[metrics].round(4).nunique() > 1).any():
            raise SystemExit(f"error: run {run_id} / {condition} differs between {', '.join(group['source'])}")
    for (model, seed), group in pooled.groupby(["model", "seed"]):
        if group["run_id"].nunique() > 1:
            raise SystemExit(f"error: {model} seed {seed} has two run ids ({', '.join(group['run_id'].unique())})")
    return pooled.drop_duplicates(["run_id", "condition"], keep="first")


def aggregated_rows(paths):
    """(per-rate rows, table rows) of the aggregated files (``*_per_rate.csv`` beside ``*.csv``)."""
    per_rate = [pd.read_csv(p) for p in paths if p.endswith("_per_rate.csv")]
    tables = [pd.read_csv(p) for p in paths if p.endswith(".csv") and not p.endswith(("_per_rate.csv",
                                                                                        "evaluations.csv"))]
    return (pd.concat(per_rate, ignore_index=True) if per_rate else pd.DataFrame(),
            pd.concat(tables, ignore_index=True) if tables else pd.DataFrame())


def merged_table(experiment, rows, agg_per_rate, agg_table):
    order = [f"dar:{v.key}" for v in experiment.variants]
    labels = {f"dar:{v.key}": v.label for v in experiment.variants}
    rows = rows[rows["model"].isin(order)].assign(display_name=lambda f: f["model"].map(labels))
    conditions = [f"intra-{r / 10:.1f}" for r in range(10)]
    per_cond, table = experiment_table(rows, order, conditions)
    for model in set(agg_table.get("model", [])) & set(order):
        aggregated = agg_table[agg_table["model"] == model]
        if int(aggregated["min_seeds"].iloc[0]) <= int(table.loc[table["model"] == model, "min_seeds"].max()):
            continue
        per_cond = pd.concat([per_cond[per_cond["model"] != model], agg_per_rate[agg_per_rate["model"] == model]],
                             ignore_index=True)
        table = pd.concat([table[table["model"] != model], aggregated.assign(display_name=labels[model])],
                          ignore_index=True)
    per_cond = aggregate._ordered(per_cond, order, conditions)
    table = aggregate._ordered(table, order, ())
    seeds = per_cond.groupby("model")["seeds"].agg(lambda s: " ".join(sorted(set(" ".join(s).split()))))
    table["seeds"] = table["model"].map(seeds)
    return per_cond, table


def paired_deltas(rows, table_models):
    """Per (variant, seed): the variant's average over the rates minus the full model's, same seed."""
    per_seed = rows.groupby(["model", "seed"])[["Non0_acc_2", "MAE"]].mean().reset_index()
    full = per_seed[per_seed["model"] == "dar:full"].set_index("seed")
    out = []
    for _, r in per_seed[per_seed["model"].isin(table_models) & (per_seed["model"] != "dar:full")].iterrows():
        if r["seed"] in full.index:
            out.append({"model": r["model"], "seed": int(r["seed"]),
                        "delta_Non0_acc_2_points": round(100 * (r["Non0_acc_2"] - full.loc[r["seed"], "Non0_acc_2"]), 2),
                        "delta_MAE": round(r["MAE"] - full.loc[r["seed"], "MAE"], 4)})
    return pd.DataFrame(out)


def merged_table1(out_dir, paths):
    """Table 1 of every model in the Table 1 files, averaged as ``run_benchmark.py`` averages it."""
    frames = [pd.read_csv(p).assign(source=Path(p).name) for p in paths]
    frames = [f for f in frames if "variant" not in f]
    if not frames:
        return
    rows = one_row_per_run_condition(pd.concat(frames, ignore_index=True))
    rows = rows[rows["protocol"] == "intra"]
    metrics = list(aggregate.METRICS)
    models = list(dict.fromkeys(rows["model"]))
    conditions = [f"intra-{r / 10:.1f}" for r in range(10)]
    per_cond = aggregate.per_condition(rows, models, conditions)
    table = aggregate.table1(per_cond, models)
    seeds = sorted(int(s) for s in rows["seed"].unique())
    tex = latex.table1_latex(table, synthetic=True, conditions="missing rates 0.0--0.9", seeds=seeds,
                             reported=latex.load_reported(["mosi"]), n_conditions=len(conditions))
    per_seed = rows.groupby(["model", "seed"])[metrics].mean().reset_index()
    write_atomic(out_dir / "table1_merged.tex", tex.encode())
    write_atomic(out_dir / "table1_merged.csv", table.to_csv(index=False, float_format="%.6g").encode())
    write_atomic(out_dir / "table1_merged_per_rate.csv", per_cond.to_csv(index=False, float_format="%.6g").encode())
    write_atomic(out_dir / "table1_merged_per_seed.csv", per_seed.to_csv(index=False, float_format="%.6g").encode())
    lines = ["Table 1 (pooled): mean over missing rates 0.0-0.9; +- is the spread of the per-seed averages",
             f"{'model':8} {'seeds':16} {'Acc-2 Non0':>14} {'MAE':>16} {'MAE r=0.0':>10} {'r=0.5':>7} {'r=0.9':>7}"]
    for model in models:
        mine, cond = per_seed[per_seed["model"] == model], per_cond[per_cond["model"] == model].set_index("condition")
        lines.append(f"{model:8} {' '.join(str(s) for s in sorted(mine['seed'])):16} "
                     f"{100 * mine['Non0_acc_2'].mean():6.2f} +- {100 * mine['Non0_acc_2'].std():4.2f} "
                     f"{mine['MAE'].mean():7.3f} +- {mine['MAE'].std():.3f} "
                     + " ".join(f"{cond.loc[c, 'MAE_mean']:7.3f}" for c in ("intra-0.0", "intra-0.5", "intra-0.9")))
    write_atomic(out_dir / "table1_merged_summary.txt", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines) + "\n")


def main(out_dir, paths):
    out_dir = Path(out_dir)
    merged_table1(out_dir, [p for p in paths if p.endswith("evaluations.csv")])
    per_seed = [p for p in paths if p.endswith("evaluations.csv")]
    rows = per_seed_rows(per_seed)
    agg_per_rate, agg_table = aggregated_rows([p for p in paths if p not in per_seed])
    for stem, name in EXPERIMENT_OF_STEM.items():
        experiment = get_experiment(name)
        table_rows = rows[(rows["experiment"] == name) | (rows["variant"] == "full")]
        if name == "train-rate":  # Table 3 shows the default k = 0.3 (Table 2's full) beside its k
            experiment = replace(experiment, variants=(*experiment.variants,
                                                       replace(get_experiment("ablation").variants[-1],
                                                               label="k = 0.3 (default)", latex="0.3 (default)",
                                                               reported=None)))
        per_cond, table = merged_table(experiment, table_rows, agg_per_rate, agg_table)
        few = [v for v in experiment.variants if len(str(table.set_index("model")["seeds"].get(f"dar:{v.key}", "")).split()) < FULL_SEEDS]
        marked = replace(experiment, variants=tuple(replace(v, latex=(v.latex or v.label) + r"$^\dagger$") if v in few
                                                    else v for v in experiment.variants))
        seeds = sorted({int(s) for text in table["seeds"] for s in text.split()})
        seeds_of = table.set_index("model")["seeds"]
        shown = [v for v in few if f"dar:{v.key}" in seeds_of.index]
        note = (r"$^\dagger$Fewer seeds: " + "; ".join(
            f"{v.latex or v.label} on {seeds_of[f'dar:{v.key}'].replace(' ', ', ')}" for v in shown) + ".") if shown else ""
        tex = experiment_latex(table, marked, synthetic=True, conditions="missing rates 0.0, ..., 0.9", seeds=seeds,
                               reported=load_reported(experiment, ["mosi"]), note=note)
        write_atomic(out_dir / f"{stem}_merged.tex", tex.encode())
        write_atomic(out_dir / f"{stem}_merged.csv", table.to_csv(index=False, float_format="%.6g").encode())
        write_atomic(out_dir / f"{stem}_merged_per_rate.csv", per_cond.to_csv(index=False, float_format="%.6g").encode())
        paired = paired_deltas(table_rows, list(table["model"]))
        write_atomic(out_dir / f"{stem}_merged_paired.csv", paired.to_csv(index=False).encode())
        lines = experiment_summary(experiment, table, per_cond, synthetic=True, seeds=seeds)
        lines += ["", "seeds per row: " + "; ".join(f"{m.split(':')[1]} {s}" for m, s in zip(table["model"], table["seeds"]))]
        if len(paired):
            lines += ["", "paired against full on the same seed (Acc-2 Non0 points / MAE):"]
            for model, block in paired.groupby("model", sort=False):
                lines.append(f"  {model.split(':')[1]:12} " + "  ".join(
                    f"{s}: {a:+.2f} / {m:+.4f}" for s, a, m in zip(block["seed"], block["delta_Non0_acc_2_points"],
                                                                  block["delta_MAE"])))
        write_atomic(out_dir / f"{stem}_merged_summary.txt", ("\n".join(lines) + "\n").encode())
        print("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2:])
