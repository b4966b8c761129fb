"""What a search leaves in the results folder, rebuilt from the trial records every time:

* ``tuning.csv``: one row per trial (params, validation value per tuning rate, objective, epochs
  run, state, wall time, and ``repeats_trial``: the earlier trial with the same params, if any);
* ``tuned_config.json``: the base MMSA-format config with each tuned model's best complete
  trial's params in ``datasetParams[dataset]``, plus ``tuned_on`` (the budget and the trial), so
  ``run_benchmark.py --config`` and ``MMSA_run(config_file=...)`` run the tuned models and every
  run's stored args say how they were tuned;
* ``tuning.tex``: the candidates and the selected value of every searched hyperparameter;
* ``figures/tuning_progress.png``/``.pdf``: the best objective so far against trials, per model.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pandas as pd

from ..store import write_atomic
from .records import read_trials
from .search import SearchDefinition

TUNED_KEY = "tuned_on"  # the provenance entry of a tuned config (carried into each run's args)
CSV, CONFIG, TEX, FIGURE = "tuning.csv", "tuned_config.json", "tuning.tex", "figures/tuning_progress"


def repeated_trials(records: Sequence[dict]) -> Dict[Tuple[str, str, int], int]:
    """(model, dataset, trial) -> the first earlier trial of the same search with the same params.

    TPE proposes a config again, above all in small categorical spaces; a repeat is trained again,
    so it spends the budget without exploring (with deterministic training it scores the same)."""
    first: Dict[tuple, int] = {}
    repeats = {}
    for r in sorted(records, key=lambda r: (r["model"], r["dataset"], r["trial"])):
        search_and_params = (r["model"], r["dataset"], json.dumps(r["params"], sort_keys=True))
        if search_and_params in first:
            repeats[(r["model"], r["dataset"], r["trial"])] = first[search_and_params]
        else:
            first[search_and_params] = r["trial"]
    return repeats


def trial_rows(records: Sequence[dict]) -> pd.DataFrame:
    repeats = repeated_trials(records)
    rows = []
    for r in records:
        row = {"model": r["model"], "dataset": r["dataset"], "trial": r["trial"], "state": r["state"],
               "objective": r["objective"], "epochs": r["epochs"], "wall_time_s": r["wall_time_s"],
               "repeats_trial": repeats.get((r["model"], r["dataset"], r["trial"])),
               "metric": r["budget"]["metric"]}
        row.update({f"valid_{rate}": v for rate, v in r["values"].items()})
        row.update({f"param_{k}": json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r["params"].items()})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["repeats_trial"] = frame["repeats_trial"].astype("Int64")
    return frame


def best_trial(records: Sequence[dict], direction: str) -> Optional[dict]:
    complete = [r for r in records if r["state"] == "complete" and r["objective"] is not None]
    if not complete:
        return None
    sign = 1 if direction == "minimize" else -1
    return min(complete, key=lambda r: (sign * r["objective"], r["trial"]))


def best_so_far(records: Sequence[dict], direction: str) -> List[float]:
    """The best complete objective after each trial (NaN until the first complete one)."""
    best, out = math.nan, []
    for r in records:
        value = r["objective"] if r["state"] == "complete" else None
        if value is not None and (math.isnan(best) or (value < best if direction == "minimize" else value > best)):
            best = value
        out.append(best)
    return out


def tuned_config(base: dict, selections: Sequence[Tuple[SearchDefinition, dict]]) -> dict:
    config = copy.deepcopy(base)
    for definition, record in selections:
        params = config[definition.model]["datasetParams"].setdefault(definition.dataset, {})
        params.update(record["params"])
        params[TUNED_KEY] = dict(definition.budget(), trial=record["trial"], objective=record["objective"],
                                 searched=sorted(definition.space))
    return config


def _latex_value(value) -> str:
    from ...report.latex import escape

    return escape(f"{value:g}" if isinstance(value, float) else value)


def tuning_latex(selections: Sequence[Tuple[SearchDefinition, dict]], synthetic: bool) -> str:
    from ...report.latex import escape
    from ...report.names import model_display_name

    tabular = [r"\begin{tabular}{lllll}", r"\toprule",
               r"Model & Data & Hyperparameter & Candidates & Selected \\", r"\midrule"]
    budgets = set()
    for definition, record in selections:
        budgets.add(json.dumps(definition.budget(), sort_keys=True))
        for i, (key, values) in enumerate(definition.space.items()):
            name = escape(model_display_name(definition.model)) if i == 0 else ""
            data = definition.dataset.upper() if i == 0 else ""
            candidates = ", ".join(_latex_value(v) for v in values)
            selected = _latex_value(record["params"][key])
            tabular.append(f"{name} & {data} & {escape(key)} & {candidates} & {selected} \\\\")
        tabular.append(r"\midrule")
    if tabular[-1] == r"\midrule":
        tabular.pop()
    tabular += [r"\bottomrule", r"\end{tabular}"]
    budget = json.loads(sorted(budgets)[0]) if budgets else {}
    caption = (f"Hyperparameters selected on validation: {budget.get('trials')} trials per model (TPE), at most "
               f"{budget.get('epoch_cap')} epochs each with ASHA pruning, objective {escape(budget.get('metric'))} "
               f"averaged over validation missing rates {', '.join(f'{r:g}' for r in budget.get('rates', []))}.")
    if len(budgets) > 1:
        caption += " The models were not all tuned on the same budget (see tuning.csv)."
    if synthetic:
        caption = r"\textbf{Synthetic data}. " + caption
    try:
        from ...report.layout import float_table
    except ImportError:  # the shared layout helper is optional here
        return "\n".join([r"\begin{table*}[t]", r"\centering", r"\small", rf"\caption{{{caption}}}",
                          r"\label{tab:tuning}", *tabular, r"\end{table*}", ""])
    return float_table(tabular, caption=caption, label="tab:tuning")


def progress_figure(curves: Dict[str, List[float]], stem: Path, metric: str) -> List[Path]:
    """One panel per searched (model, dataset): the objectives of different models are on different scales."""
    from matplotlib.ticker import MaxNLocator

    from ...report.figures import _new_figure, _save, matplotlib_available

    if not matplotlib_available() or not curves:
        return []
    cols = min(3, len(curves))
    rows = -(-len(curves) // cols)
    fig, axes = _new_figure(rows, cols, "Best validation objective against trials")
    for ax in axes.flat[len(curves):]:
        ax.set_visible(False)
    for ax, (label, curve) in zip(axes.flat, curves.items()):
        ax.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3)
        ax.set_title(label)
        ax.set_xlabel("trial")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[:, 0]:
        ax.set_ylabel(f"best {metric} so far\n(mean over rates)")
    stem.parent.mkdir(parents=True, exist_ok=True)
    return _save(fig, stem)


def write_outputs(root, definitions: Sequence[SearchDefinition], base_config: dict, *, synthetic: bool,
                  say) -> Dict[str, Path]:
    """Every output of the searches in ``definitions`` (from their stored trial records)."""
    root = Path(root)
    records = {d.key: read_trials(root, d) for d in definitions}
    frame = trial_rows([r for d in definitions for r in records[d.key]])
    write_atomic(root / CSV, frame.to_csv(index=False, float_format="%.6g").encode())
    selections = []
    for d in definitions:
        best = best_trial(records[d.key], d.direction)
        if best is None:
            say(f"warning: no trial of {d.key} completed: its config is left as it was")
        else:
            selections.append((d, best))
    write_atomic(root / CONFIG, (json.dumps(tuned_config(base_config, selections), indent=2) + "\n").encode())
    write_atomic(root / TEX, tuning_latex(selections, synthetic).encode())
    curves = {d.key: best_so_far(records[d.key], d.direction) for d in definitions if records[d.key]}
    metric = definitions[0].metric if definitions else "Loss"
    figures = progress_figure(curves, root / FIGURE, metric)
    outputs = {"csv": root / CSV, "config": root / CONFIG, "tex": root / TEX}
    if figures:
        outputs["figure"] = figures[0]
    return outputs
