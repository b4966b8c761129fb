"""The Ray backend: Ray Tune runs the trials of a search in parallel, on this machine's Ray or a
cluster (``--ray-address``), with ``OptunaSearch`` (the serial backend's TPE sampler) and
``ASHAScheduler`` (its pruning rungs) from :mod:`.search`.

Each trial is the serial backend's :func:`.trial.run_trial` inside a Tune function trainable: it
reports the objective after every epoch (ASHA stops the trial at a rung it does not pass), writes
its record when it completes, and its last report carries ``final``. Pruned trials' records are
written here from Tune's results. A killed search resumes with ``Tuner.restore`` from
``tuning/ray/<model>-<dataset>/`` (finished trials are kept; unfinished and errored ones rerun).
"""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Callable

from .records import checkpoint_path, read_trials, tuning_dir, write_trial
from .search import EPOCH, OBJECTIVE, SearchDefinition, ray_scheduler, ray_search
from .space import decode_params
from .trial import TrialOutcome, run_trial

FINAL = "final"


def trial_number(trial_dir, trial_id: str) -> int:
    """Tune's counter of a trial (its order of creation), from its folder ``<name>_<id>_<counter>_<params>...``."""
    return int(Path(trial_dir).name.split(f"_{trial_id}_", 1)[1].split("_", 1)[0])


def _report_values(values: dict) -> dict:
    return {f"valid_{rate}": value for rate, value in values.items()}


def ray_trial(config: dict, *, definition: SearchDefinition, settings, root: str, cwd: str, threads: int) -> None:
    """The function trainable: one trial, reporting each epoch to Tune."""
    import torch
    from ray import tune

    import dar_mmsa  # noqa: F401  -- registers our models and MMSA's fixes in this worker

    os.chdir(cwd)
    torch.set_num_threads(threads)
    context = tune.get_context()
    number = trial_number(context.get_trial_dir(), context.get_trial_id())

    def on_epoch(epoch: int, objective: float, values: dict) -> bool:
        tune.report({EPOCH: epoch, OBJECTIVE: objective, **_report_values(values)})
        return False  # ASHA stops the trial itself

    outcome = run_trial(settings, definition, config, checkpoint_path(root, definition, number), on_epoch)
    write_trial(root, definition, number, outcome, "ray")
    tune.report({EPOCH: max(outcome.epochs, 1), OBJECTIVE: outcome.objective, FINAL: True,
                 **_report_values(outcome.values)})


def run_ray(definition: SearchDefinition, settings, root, executor, say: Callable[[str], None]) -> None:
    """Run (or resume) the search on Ray Tune; ``executor`` is the started Ray executor (its CPUs,
    GPUs, jobs and retries per trial)."""
    from functools import partial

    from ray import tune

    root = str(Path(root).resolve())
    storage = tuning_dir(root) / "ray"
    storage.mkdir(parents=True, exist_ok=True)
    trainable = tune.with_resources(
        partial(ray_trial, definition=definition, settings=settings, root=root, cwd=os.getcwd(),
                threads=max(1, math.floor(executor.cpus))),
        {"cpu": executor.cpus, "gpu": executor.gpus})
    experiment = storage / definition.key
    if tune.Tuner.can_restore(str(experiment)):
        say(f"{definition.key}: resuming the Ray Tune search in {experiment}")
        tuner = tune.Tuner.restore(str(experiment), trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=ray_search(definition), scheduler=ray_scheduler(definition),
                                        num_samples=definition.trials, max_concurrent_trials=executor.jobs,
                                        reuse_actors=False),
            run_config=tune.RunConfig(name=definition.key, storage_path=str(storage), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=executor.retries)))
    results = tuner.fit()
    if results.num_terminated + results.num_errors < definition.trials:  # Tune caught a SIGINT and saved its state
        raise KeyboardInterrupt
    shutil.rmtree(checkpoint_path(root, definition, 0).parent, ignore_errors=True)  # those of stopped trials
    written = {r["trial"] for r in read_trials(root, definition)}
    for result in results:
        if not result.metrics or result.metrics.get(FINAL):
            continue
        number = trial_number(result.path, result.metrics["trial_id"])
        if number in written:
            continue
        frame = result.metrics_dataframe
        intermediate = [float(v) for v in frame[OBJECTIVE]] if frame is not None and OBJECTIVE in frame else []
        values = {k[len("valid_"):]: float(v) for k, v in result.metrics.items() if k.startswith("valid_")}
        state = "failed" if result.error is not None else "pruned"
        write_trial(root, definition, number,
                    TrialOutcome(decode_params(result.config or {}), state, values,
                                 float(result.metrics.get(OBJECTIVE, math.nan)), int(result.metrics.get(EPOCH, 0)),
                                 intermediate, float(result.metrics.get("time_total_s", 0.0))), "ray")
