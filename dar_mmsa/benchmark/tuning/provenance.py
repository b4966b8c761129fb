"""Which runs of a report used a tuned config, and on which budget: read from each run's stored
args (``tuned_on``, written into ``tuned_config.json`` by the search), for the Table 1 summary and
the ``table1.tex`` caption."""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

from .outputs import TUNED_KEY


def tuned_budgets(store, records: Sequence[dict]) -> Dict[Tuple[str, str, str], dict]:
    """(display name, model, dataset) -> the ``tuned_on`` entry of its runs, for tuned runs only."""
    out = {}
    for run_id in dict.fromkeys(r["run_id"] for r in records):
        training = store.training(run_id)
        tuned = ((training or {}).get("args") or {}).get(TUNED_KEY)
        if isinstance(tuned, dict):
            out[(training.get("display_name", training["model"]), training["model"], training["dataset"])] = tuned
    return out


def budget_text(tuned: dict) -> str:
    rates = "/".join(f"{r:g}" for r in tuned.get("rates", []))
    seeds = tuned.get("seeds", [])
    return (f"{tuned.get('trials')} trials of at most {tuned.get('epoch_cap')} epochs, seed{'s' * (len(seeds) > 1)} "
            f"{', '.join(map(str, seeds))}, validation {tuned.get('metric')} averaged over missing rates {rates}")


def tuning_note(store, records: Sequence[dict]) -> str:
    """One sentence naming the tuned configs and their budgets ("" when no run was tuned)."""
    tuned = tuned_budgets(store, records)
    if not tuned:
        return ""
    by_budget: Dict[str, list] = {}
    for (name, _, dataset), entry in tuned.items():
        by_budget.setdefault(budget_text(entry), []).append(f"{name} ({dataset.upper()})")
    parts = [f"{', '.join(names)} on {budget}" for budget, names in by_budget.items()]
    tuned_models = {model for _, model, _ in tuned}
    others = sorted({r["display_name"] for r in records if r["model"] not in tuned_models})
    rest = f"; {', '.join(others)} at default configs" if others else ""
    return f"Configs tuned on validation: {'; '.join(parts)}{rest}."


def caption_with_note(tex: str, note: str) -> str:
    """``tex`` with ``note`` (LaTeX-escaped) at the start of its caption."""
    from ...report.latex import escape

    if not note:
        return tex
    return tex.replace(r"\caption{", r"\caption{" + escape(note) + " ", 1)
