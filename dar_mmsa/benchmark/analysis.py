"""Significance and robustness of a benchmark's results, from the store (no model is run).

* :func:`compare_to_reference`: per dataset, every model against a reference model fixed in
  advance (:func:`reference_model`), paired bootstrap (``significance``) over the test samples and
  the seeds both models have at every intra-modal condition of the command, from the stored
  per-sample predictions: one row per (model, condition or the Table 1 average, metric) for
  ``significance.csv``, and from the same draws the leads in robustness (AUC and effective
  robustness) for ``robustness.csv``. Each family of tests (per dataset and reference: every row)
  gets Holm-adjusted p-values and Benjamini-Hochberg q-values; ``significant`` is declared only on
  the primary metrics' Table 1 averages, after Holm's adjustment over that primary family.
* :func:`significant_cells`: the Table 1 cells where the reference's lead over every other model
  is significant (marked in ``table1.tex``).
* :func:`default_baseline`: the baseline of effective robustness (the first of MMSA's own models in
  the command, the role late fusion plays in MultiBench; else the first model).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np
import pandas as pd

from .aggregate import DATASET_METRICS, METRICS
from .claims import ALPHA, PROPOSED_MODEL, primary_label
from .multiple_testing import add_adjusted
from .predictions import record_predictions
from .robustness import DEFAULT_FRACTION, robustness_lead_rows
from .significance import DEFAULT_BOOTSTRAP_SEED, DEFAULT_BOOTSTRAPS, bootstrap_curves, lead_rows
from .store import ResultStore

BEST = "best"                # --compare best: the best Table 1 average on the test set (biased; said so)
REFERENCE_METRIC = "Non0_acc_2"
DEFAULT_PRIMARY = ("Non0_acc_2", "MAE")  # the paper's headline columns, on the Table 1 average
AVERAGE = "table1_avg"


@dataclass
class AnalysisOptions:
    compare: Optional[str] = None          # reference model (None: DAR if it runs, else the first model; "best")
    bands: bool = False                    # +-1 std bands in the figures
    n_boot: int = DEFAULT_BOOTSTRAPS
    boot_seed: int = DEFAULT_BOOTSTRAP_SEED
    fraction: float = DEFAULT_FRACTION     # breakdown rate: first rate below fraction x clean value
    baseline: Optional[str] = None         # effective-robustness baseline (None: default_baseline)
    primary: Sequence[str] = DEFAULT_PRIMARY  # metrics whose Table 1 averages make the primary family

    def to_record(self) -> dict:
        return {**self.__dict__, "primary": list(self.primary)}


def check_analysis(options: Optional[Mapping], models: Optional[Sequence[str]]) -> AnalysisOptions:
    """Options as given (None: defaults), each checked: one error line for a bad one."""
    from ..errors import ConfigError

    given = {k: v for k, v in dict(options or {}).items() if v is not None}
    unknown = set(given) - set(AnalysisOptions.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown analysis option(s) {', '.join(sorted(unknown))}: use "
                          f"{', '.join(AnalysisOptions.__dataclass_fields__)}")
    out = AnalysisOptions(**given)
    for name in ("compare", "baseline"):
        value = getattr(out, name)
        if value is not None and models is not None and value not in models and not (name == "compare"
                                                                                    and value == BEST):
            flag = "--compare" if name == "compare" else "--robustness-baseline"
            extra = " or best" if name == "compare" else ""
            raise ConfigError(f"{flag} {value}: not one of the models of this run ({', '.join(models)}){extra}")
    if not 0 < float(out.fraction) < 1:
        raise ConfigError(f"--breakdown-fraction {out.fraction}: must be between 0 and 1 (e.g. 0.9)")
    if int(out.n_boot) < 100:
        raise ConfigError(f"--bootstrap {out.n_boot}: use at least 100 draws (default {DEFAULT_BOOTSTRAPS})")
    if isinstance(out.primary, str) or not len(out.primary) or set(out.primary) - set(METRICS):
        bad = [out.primary] if isinstance(out.primary, str) else sorted(set(out.primary) - set(METRICS))
        raise ConfigError(f"--primary {' '.join(bad) or '(none)'}: give one or more of {', '.join(METRICS)} "
                          f"(default: {' '.join(DEFAULT_PRIMARY)})")
    out.primary = tuple(dict.fromkeys(out.primary))
    return out


def default_baseline(models: Sequence[str]) -> Optional[str]:
    from ..registry import our_models

    ours = set(our_models())
    return next((m for m in models if m not in ours), models[0] if models else None)


def reference_model(table1: pd.DataFrame, dataset: str, candidates: Sequence[str], compare: Optional[str],
                    model_order: Sequence[str]) -> Optional[str]:
    """``--compare MODEL``; ``best``: the best Table 1 average Non0 Acc-2 (chosen on the test set);
    by default DAR when it runs, else the first model of the command: fixed before any result. None
    when that model has no complete predictions on ``dataset``."""
    if compare == BEST:
        rows = table1[(table1["dataset"] == dataset) & table1["model"].isin(candidates)]
        if rows.empty:
            return None
        return rows.sort_values(REFERENCE_METRIC, ascending=False, kind="stable").iloc[0]["model"]
    fixed = compare or (PROPOSED_MODEL if PROPOSED_MODEL in model_order else (model_order[0] if model_order else None))
    return fixed if fixed in candidates else None


def predictions_by_run(store: ResultStore, records: Sequence[Mapping], condition_keys: Sequence[str]):
    """{(dataset, model): {seed: {condition key: columns}}} for the intra-modal conditions."""
    out: Dict[Tuple[str, str], Dict[int, Dict[str, dict]]] = {}
    wanted = set(condition_keys)
    for r in records:
        key = r["condition"]["key"]
        if key not in wanted:
            continue
        columns = record_predictions(store, r)
        if columns is not None:
            out.setdefault((r["dataset"], r["model"]), {}).setdefault(int(r["seed"]), {})[key] = columns
    return out


def stack_predictions(runs: Mapping[int, Mapping[str, dict]], seeds: Sequence[int], keys: Sequence[str]):
    return np.stack([np.stack([runs[s][k]["prediction"] for k in keys]) for s in seeds])


@dataclass
class Comparison:
    """What :func:`compare_to_reference` found: the rows of ``significance.csv``, the robustness
    leads (one row per dataset, model, metric and kind), and each dataset's reference."""
    significance: pd.DataFrame
    robustness_leads: pd.DataFrame
    references: Dict[str, str] = field(default_factory=dict)
    chosen_on_test_set: bool = False


SIGNIFICANCE_COLUMNS = ["data", "dataset", "reference", "reference_name", "model", "display_name", "condition", "rate",
                        "metric", "family", "defined", "reference_value", "model_value", "lead", "lead_low",
                        "lead_high", "p_value", "p_value_mc_se", "p_holm", "q_bh", "p_holm_primary", "significant",
                        "draws_used", "n_test", "seeds", "n_boot", "boot_seed"]


def _family(condition: str, metric: str, primary: Sequence[str]) -> str:
    if condition != AVERAGE:
        return "exploratory"
    return "primary" if metric in primary else "secondary"


def compare_to_reference(store: ResultStore, records: Sequence[Mapping], table1: pd.DataFrame, conditions: Sequence,
                         model_order: Sequence[str], options: AnalysisOptions) -> Comparison:
    """Every model of each dataset against its reference (see the module docstring)."""
    intra = [c for c in conditions if c.protocol == "intra"]
    keys = [c.key for c in intra]
    by_rate = sorted((i for i, c in enumerate(intra) if c.rate is not None), key=lambda i: intra[i].rate)
    rates = [float(intra[i].rate) for i in by_rate]
    by_run = predictions_by_run(store, records, keys)
    rows: List[dict] = []
    lead_rows_: List[dict] = []
    references: Dict[str, str] = {}
    names = dict(zip(table1["model"], table1["display_name"]))
    data = dict(zip(table1["dataset"], table1["data"]))
    for dataset in dict.fromkeys(table1["dataset"]):
        if dataset in DATASET_METRICS:  # CH-SIMS: the bootstrap computes MOSI/MOSEI's metrics only
            continue
        complete = {m: {s: runs for s, runs in by_run.get((dataset, m), {}).items() if all(k in runs for k in keys)}
                    for m in model_order}
        candidates = [m for m in model_order if complete[m]]
        reference = reference_model(table1, dataset, candidates, options.compare, model_order)
        if reference is None:
            continue
        references[dataset] = reference
        pairs: Dict[Tuple[int, ...], List[str]] = {}  # models by the seeds they share with the reference
        for model in candidates:
            seeds = tuple(sorted(set(complete[reference]) & set(complete[model])))
            if model == reference or not seeds:
                continue
            first = complete[reference][seeds[0]][keys[0]]
            if any(not np.array_equal(complete[m][s][k]["id"], first["id"]) for m in (reference, model)
                   for s in seeds for k in keys):
                continue  # not the same test samples: no paired comparison
            pairs.setdefault(seeds, []).append(model)
        for seeds, models in pairs.items():
            label = complete[reference][seeds[0]][keys[0]]["label"]
            stacked = {m: stack_predictions(complete[m], seeds, keys) for m in (reference, *models)}
            point, draws = bootstrap_curves(label, stacked, n_boot=options.n_boot, seed=options.boot_seed)
            common = {"data": data.get(dataset), "dataset": dataset, "reference": reference,
                      "reference_name": names.get(reference, reference)}
            for model in models:
                for metric in METRICS:
                    for r in lead_rows(metric, point[reference][metric], point[model][metric],
                                       draws[reference][metric], draws[model][metric]):
                        i = r.pop("rate_index")
                        condition = AVERAGE if i < 0 else keys[i]
                        rows.append({**common, "model": model, "display_name": names.get(model, model),
                                     "condition": condition, "rate": None if i < 0 else intra[i].rate,
                                     "family": _family(condition, metric, options.primary), **r,
                                     "n_test": len(label), "seeds": " ".join(map(str, seeds)),
                                     "n_boot": options.n_boot, "boot_seed": options.boot_seed})
                    if len(by_rate) >= 2:
                        for r in robustness_lead_rows(metric, rates, point[reference][metric][by_rate],
                                                      point[model][metric][by_rate],
                                                      draws[reference][metric][:, by_rate],
                                                      draws[model][metric][:, by_rate]):
                            lead_rows_.append({**common, "model": model, **r,
                                               "family": "primary" if metric in options.primary else "secondary"})
    significance = pd.DataFrame(rows, columns=[c for c in SIGNIFICANCE_COLUMNS if c not in
                                               ("p_holm", "q_bh", "p_holm_primary", "significant")])
    significance = add_adjusted(significance, groups=["dataset", "reference"], alpha=ALPHA,
                                primary=(significance["family"] == "primary").to_numpy())[SIGNIFICANCE_COLUMNS]
    leads = pd.DataFrame(lead_rows_, columns=["data", "dataset", "reference", "reference_name", "model", "metric",
                                              "kind", "family", "lead", "lead_low", "lead_high", "p_value",
                                              "p_value_mc_se", "draws_used", "defined"])
    leads = add_adjusted(leads, groups=["dataset", "reference"], alpha=ALPHA,
                         primary=(leads["family"] == "primary").to_numpy())
    return Comparison(significance, leads, references, options.compare == BEST)


def significant_cells(significance: pd.DataFrame, table1: pd.DataFrame) -> Set[Tuple[str, str, str]]:
    """(reference, dataset, metric) where the reference's lead on the Table 1 average over every
    other model of that dataset's table is positive and significant (primary family, Holm)."""
    cells = set()
    average = significance[significance["condition"] == AVERAGE]
    for (dataset, reference), block in average.groupby(["dataset", "reference"]):
        others = set(table1.loc[table1["dataset"] == dataset, "model"]) - {reference}
        for metric in METRICS:
            rows = block[block["metric"] == metric]
            if set(rows["model"]) >= others and len(rows) and (rows["significant"].astype(bool)
                                                                 & (rows["lead"] > 0)).all():
                cells.add((reference, dataset, metric))
    return cells


def significance_note(options: AnalysisOptions, references: Mapping[str, str]) -> str:
    who = ", ".join(sorted(set(references.values())))
    return (f"Lead of {who} over every other model significant at 5\\% after Holm's adjustment over the primary "
            f"family ({primary_label(options.primary)} on the average, against every other model); paired "
            f"bootstrap over test samples and seeds, {options.n_boot} draws.")


__all__ = ["AnalysisOptions", "AVERAGE", "BEST", "Comparison", "compare_to_reference", "default_baseline",
           "significant_cells", "significance_note", "check_analysis"]
