"""Equal-budget hyperparameter search on validation for every model (``--experiment tune``).

``space`` (what each model may try: ``SEARCH_SPACE`` beside our models' defaults, MMSA's own
``config_tune.json`` lists for MMSA's) -> ``search`` (one definition: seeded TPE + ASHA over
epochs, the same for both backends) -> ``trial`` (train on train, score on validation only) ->
``serial`` (in-process Optuna, journal in the results folder) or ``ray_tune`` (Ray Tune's Tuner
with ``OptunaSearch`` and ``ASHAScheduler``) -> ``records`` (one JSON per trial, atomic) ->
``outputs`` (tuning.csv, tuned_config.json, tuning.tex, the progress figure); ``api.tune`` runs it.
"""
from .api import TuningResult, tune

__all__ = ["tune", "TuningResult"]
