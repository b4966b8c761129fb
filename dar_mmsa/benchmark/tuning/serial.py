"""The serial backend: an in-process Optuna study per (model, dataset), trials one after another.

The study lives in an Optuna journal in the results folder (``tuning/optuna.journal``), so a
killed search resumes: finished and pruned trials are kept, a trial that was running when the
process died is marked failed and its parameters are tried again first, and the sampler is
re-seeded with the number of trials already in the study so it does not propose the first ones again.
"""
from __future__ import annotations

import math
import traceback
from typing import Callable

from ...errors import ConfigError
from .records import checkpoint_path, tuning_dir, write_trial
from .search import SearchDefinition, pruner, sampler
from .space import decode_params, distributions
from .trial import TrialOutcome, run_trial

JOURNAL = "optuna.journal"
INTERRUPTED = "interrupted"


def journal_storage(root):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    folder = tuning_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(folder / JOURNAL)))


def _identity(definition: SearchDefinition) -> dict:
    return {"budget": definition.budget(), "space": {k: list(map(str, v)) for k, v in definition.space.items()}}


def open_study(definition: SearchDefinition, root):
    """The study of ``definition`` (created, or resumed with its interrupted trials re-queued)."""
    import optuna
    from optuna.trial import TrialState

    storage = journal_storage(root)
    existing = definition.key in optuna.get_all_study_names(storage)
    before = len(optuna.load_study(study_name=definition.key, storage=storage).trials) if existing else 0
    study = optuna.create_study(study_name=definition.key, storage=storage, direction=definition.direction,
                                sampler=sampler(definition, before), pruner=pruner(definition), load_if_exists=True)
    identity = _identity(definition)
    stored = study.user_attrs.get("search")
    if stored is None:
        study.set_user_attr("search", identity)
    elif stored["space"] != identity["space"] or {k: v for k, v in stored["budget"].items() if k != "trials"} != \
            {k: v for k, v in identity["budget"].items() if k != "trials"}:
        raise ConfigError(f"{root} holds a search of {definition.key} with another budget or space: pass another "
                          f"--name, or the same --epoch-cap, --tune-seeds, --tune-rates and --tune-metric")
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_user_attr(stale._trial_id, INTERRUPTED, True)
        storage.set_trial_state_values(stale._trial_id, TrialState.FAIL)
        study.enqueue_trial(stale.params, skip_if_exists=False)
    return study


def finished_trials(study) -> int:
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state != TrialState.RUNNING and t.state != TrialState.WAITING and not t.user_attrs.get(INTERRUPTED))


def run_serial(definition: SearchDefinition, settings, root, say: Callable[[str], None]) -> None:
    """Run the search until ``definition.trials`` trials are finished (complete, pruned or failed)."""
    from optuna.trial import TrialState

    study = open_study(definition, root)
    space = distributions(definition.space)
    while finished_trials(study) < definition.trials:
        trial = study.ask(space)

        def on_epoch(epoch: int, objective: float, values: dict, trial=trial) -> bool:
            if not math.isfinite(objective):
                return False
            trial.report(objective, epoch)
            return trial.should_prune()

        try:
            outcome = run_trial(settings, definition, trial.params, checkpoint_path(root, definition, trial.number),
                                on_epoch)
        except ConfigError:
            raise
        except Exception as exc:  # a configuration that cannot train: the search goes on without it
            say(f"warning: {definition.key} trial {trial.number} failed: {type(exc).__name__}: {exc}")
            settings.store.root.joinpath("logs").mkdir(parents=True, exist_ok=True)
            (settings.store.root / "logs" / f"tune-{definition.key}-{trial.number:05d}.log").write_text(
                traceback.format_exc())
            outcome = TrialOutcome(decode_params(trial.params), "failed", {}, math.nan, 0)
        write_trial(root, definition, trial.number, outcome, "serial")
        if outcome.state == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        elif outcome.state == "failed" or not math.isfinite(outcome.objective):
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, outcome.objective)
        say(f"{definition.key} trial {trial.number}: {outcome.state}, objective {outcome.objective:.4f} "
            f"after {outcome.epochs} epochs ({outcome.wall_time_s:.0f}s)")
