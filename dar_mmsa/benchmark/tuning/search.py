"""One search definition for both backends: Optuna's TPE sampler (seeded) and asynchronous
successive halving (ASHA) over epochs, built here for in-process Optuna (serial) and for Ray Tune
(``OptunaSearch`` wrapping the same sampler, ``ASHAScheduler`` with the same rungs).

The budget rule: every model gets the same number of trials, the same epoch cap, the same
training seeds, the same validation rates and the same pruning schedule (rungs at 1, 3, 9, ...
epochs: a trial continues past a rung only if it is in the best third of the trials that reached it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Tuple

from ...errors import ConfigError

LOWER_IS_BETTER = ("Loss", "MAE")
HIGHER_IS_BETTER = ("Corr", "Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score", "Mult_acc_5",
                    "Mult_acc_7")
METRICS = LOWER_IS_BETTER + HIGHER_IS_BETTER
DEFAULT_TUNE_RATES = (0.0, 0.3, 0.6, 0.9)
DEFAULT_TRIALS = 16
DEFAULT_SAMPLER_SEED = 0
GRACE_EPOCHS = 1
REDUCTION_FACTOR = 3
OBJECTIVE = "objective"  # the name under which trials report the averaged validation value
EPOCH = "epoch"


@dataclass(frozen=True)
class SearchDefinition:
    """What is searched for one (model, dataset) and with which budget."""

    model: str
    dataset: str
    space: Mapping[str, list]
    trials: int
    epoch_cap: int
    seeds: Tuple[int, ...]
    rates: Tuple[float, ...] = DEFAULT_TUNE_RATES
    metric: str = "Loss"
    sampler_seed: int = DEFAULT_SAMPLER_SEED

    @property
    def direction(self) -> str:
        return "minimize" if self.metric in LOWER_IS_BETTER else "maximize"

    @property
    def mode(self) -> str:  # Ray's spelling
        return "min" if self.direction == "minimize" else "max"

    @property
    def key(self) -> str:
        return f"{self.model}-{self.dataset}"

    def budget(self) -> Dict[str, object]:
        """The budget as stored with the outputs (what "tuned on which budget" means)."""
        return {"trials": self.trials, "epoch_cap": self.epoch_cap, "seeds": list(self.seeds),
                "rates": list(self.rates), "metric": self.metric, "sampler_seed": self.sampler_seed,
                "pruning": f"ASHA, grace {GRACE_EPOCHS} epoch, reduction factor {REDUCTION_FACTOR}"}


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ConfigError(f"--tune-metric {metric} is not a validation metric: choose one of {', '.join(METRICS)}")
    return metric


def check_budget(trials, epoch_cap) -> Tuple[int, int]:
    for flag, value in (("--trials", trials), ("--epoch-cap", epoch_cap)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{flag} {value} must be a positive integer, e.g. {flag} 16")
    return trials, epoch_cap


def sampler(definition: SearchDefinition, offset: int = 0):
    """The seeded TPE sampler; ``offset`` (the trials already in a resumed study) keeps a resumed
    search from proposing the first trials again."""
    import optuna

    return optuna.samplers.TPESampler(seed=definition.sampler_seed + offset)


def pruner(definition: SearchDefinition):
    """Optuna's asynchronous successive halving over epochs."""
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(min_resource=GRACE_EPOCHS, reduction_factor=REDUCTION_FACTOR,
                                                  min_early_stopping_rate=0)


def ray_search(definition: SearchDefinition):
    """Ray Tune's Optuna searcher over the same distributions with the same sampler."""
    from ray.tune.search.optuna import OptunaSearch

    from .space import distributions

    return OptunaSearch(space=distributions(definition.space), metric=OBJECTIVE, mode=definition.mode,
                        sampler=sampler(definition))


def ray_scheduler(definition: SearchDefinition):
    """Ray Tune's ASHA over reported epochs, with the rungs of :func:`pruner`."""
    from ray.tune.schedulers import ASHAScheduler

    # max_t one above the cap: at max_t ASHA stops a trial, which must still score its selected checkpoint
    return ASHAScheduler(time_attr=EPOCH, metric=OBJECTIVE, mode=definition.mode, max_t=definition.epoch_cap + 1,
                         grace_period=GRACE_EPOCHS, reduction_factor=REDUCTION_FACTOR)
