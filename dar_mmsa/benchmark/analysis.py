"""Significance and robustness of a benchmark's results, from the store (no model is run).

* :func:`significance_table`: per dataset, every model against a reference model (``compare``, or
  by default the best Table 1 average Non0 Acc-2), paired bootstrap (``significance``) over the
  test samples and the seeds both models have at every intra-modal condition of the command, from
  the stored per-sample predictions; one row per (model, condition or the Table 1 average, metric).
* :func:`significant_cells`: the Table 1 cells where the reference is best and its lead over every
  other model is significant (marked in ``table1.tex``).
* :func:`default_baseline`: the baseline of effective robustness (the first of MMSA's own models in
  the command, the role late fusion plays in MultiBench; else the first model).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np
import pandas as pd

from .aggregate import METRICS
from .predictions import record_predictions
from .robustness import DEFAULT_FRACTION
from .significance import DEFAULT_BOOTSTRAP_SEED, DEFAULT_BOOTSTRAPS, paired_bootstrap
from .store import ResultStore

REFERENCE_METRIC = "Non0_acc_2"
AVERAGE = "table1_avg"


@dataclass
class AnalysisOptions:
    compare: Optional[str] = None          # reference model of significance.csv (None: best on Table 1)
    bands: bool = False                    # +-1 std bands in the figures
    n_boot: int = DEFAULT_BOOTSTRAPS
    boot_seed: int = DEFAULT_BOOTSTRAP_SEED
    fraction: float = DEFAULT_FRACTION     # breakdown rate: first rate below fraction x clean value
    baseline: Optional[str] = None         # effective-robustness baseline (None: default_baseline)

    def to_record(self) -> dict:
        return dict(self.__dict__)


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
        if value is not None and models is not None and value not in models:
            flag = "--compare" if name == "compare" else "--robustness-baseline"
            raise ConfigError(f"{flag} {value}: not one of the models of this run ({', '.join(models)})")
    if not 0 < float(out.fraction) < 1:
        raise ConfigError(f"--breakdown-fraction {out.fraction}: must be between 0 and 1 (e.g. 0.9)")
    if int(out.n_boot) < 100:
        raise ConfigError(f"--bootstrap {out.n_boot}: use at least 100 draws (default {DEFAULT_BOOTSTRAPS})")
    return out


def default_baseline(models: Sequence[str]) -> Optional[str]:
    from ..registry import our_models

    ours = set(our_models())
    return next((m for m in models if m not in ours), models[0] if models else None)


def reference_model(table1: pd.DataFrame, dataset: str, candidates: Sequence[str], compare: Optional[str]):
    if compare is not None:
        return compare if compare in candidates else None
    rows = table1[(table1["dataset"] == dataset) & table1["model"].isin(candidates)]
    if rows.empty:
        return None
    return rows.sort_values(REFERENCE_METRIC, ascending=False, kind="stable").iloc[0]["model"]


def _predictions_by_run(store: ResultStore, records: Sequence[Mapping], condition_keys: Sequence[str]):
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


def _stack(runs: Mapping[int, Mapping[str, dict]], seeds: Sequence[int], keys: Sequence[str]):
    return np.stack([np.stack([runs[s][k]["prediction"] for k in keys]) for s in seeds])


def significance_table(store: ResultStore, records: Sequence[Mapping], table1: pd.DataFrame,
                       conditions: Sequence, model_order: Sequence[str], options: AnalysisOptions) -> pd.DataFrame:
    """One row per (dataset, model other than the reference, condition or average, metric)."""
    intra = [c for c in conditions if c.protocol == "intra"]
    keys = [c.key for c in intra]
    by_run = _predictions_by_run(store, records, keys)
    rows: List[dict] = []
    names = dict(zip(table1["model"], table1["display_name"]))
    data = dict(zip(table1["dataset"], table1["data"]))
    for dataset in dict.fromkeys(table1["dataset"]):
        complete = {m: {s: runs for s, runs in by_run.get((dataset, m), {}).items() if all(k in runs for k in keys)}
                    for m in model_order}
        candidates = [m for m in model_order if complete[m]]
        reference = reference_model(table1, dataset, candidates, options.compare)
        if reference is None:
            continue
        for model in candidates:
            seeds = sorted(set(complete[reference]) & set(complete[model]))
            if model == reference or not seeds:
                continue
            first = complete[reference][seeds[0]][keys[0]]
            if any(not np.array_equal(complete[m][s][k]["id"], first["id"]) for m in (reference, model)
                   for s in seeds for k in keys):
                continue  # not the same test samples: no paired comparison
            out = paired_bootstrap(first["label"], _stack(complete[reference], seeds, keys),
                                   _stack(complete[model], seeds, keys), n_boot=options.n_boot, seed=options.boot_seed)
            for _, r in out.iterrows():
                i = int(r["rate_index"])
                rows.append({"data": data.get(dataset), "dataset": dataset, "reference": reference,
                             "reference_name": names.get(reference, reference), "model": model,
                             "display_name": names.get(model, model),
                             "condition": AVERAGE if i < 0 else keys[i],
                             "rate": None if i < 0 else intra[i].rate, **{k: r[k] for k in (
                                 "metric", "reference_value", "model_value", "lead", "lead_low", "lead_high",
                                 "p_value", "significant")},
                             "n_test": len(first["label"]), "seeds": " ".join(map(str, seeds)),
                             "n_boot": options.n_boot, "boot_seed": options.boot_seed})
    columns = ["data", "dataset", "reference", "reference_name", "model", "display_name", "condition", "rate",
               "metric", "reference_value", "model_value", "lead", "lead_low", "lead_high", "p_value", "significant",
               "n_test", "seeds", "n_boot", "boot_seed"]
    return pd.DataFrame(rows, columns=columns)


def significant_cells(significance: pd.DataFrame, table1: pd.DataFrame) -> Set[Tuple[str, str, str]]:
    """(reference, dataset, metric) where the reference is best on the Table 1 average and its lead
    over every other model of that dataset's table is significant (interval above 0)."""
    cells = set()
    average = significance[significance["condition"] == AVERAGE]
    for (dataset, reference), block in average.groupby(["dataset", "reference"]):
        others = set(table1.loc[table1["dataset"] == dataset, "model"]) - {reference}
        for metric in METRICS:
            rows = block[block["metric"] == metric]
            if set(rows["model"]) >= others and len(rows) and (rows["lead_low"] > 0).all():
                cells.add((reference, dataset, metric))
    return cells


def significance_note(options: AnalysisOptions, references: Mapping[str, str]) -> str:
    who = ", ".join(sorted(set(references.values())))
    return (f"Lead of {who} over every other model significant: 95\\% paired bootstrap interval over test "
            f"samples and seeds ({options.n_boot} draws) excludes 0.")


__all__ = ["AnalysisOptions", "AVERAGE", "default_baseline", "significance_table", "significant_cells",
           "significance_note", "check_analysis"]
