"""Search spaces: what a tuning search may try for each model, as data.

Our models declare ``SEARCH_SPACE`` next to their ``DEFAULTS`` (reaching here through the registry);
MMSA's models use the lists of the installed MMSA's own ``config_tune.json`` (its ``d_paras``: the
keys whose value there is a list). A space is ``{config key: [candidate values]}``; Optuna sees
each key as a categorical choice. Candidates that Optuna cannot store as they are (lists, e.g.
TFR-Net's ``dst_feature_dim_nheads``) travel as JSON text and are decoded before they reach a config.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Mapping

from ...errors import ConfigError
from ...registry import our_models

_PLAIN = (type(None), bool, int, float, str)
_ENCODED = "json:"


def mmsa_tune_lists(model: str) -> Dict[str, list]:
    """The candidate lists of ``model`` in the installed MMSA's ``config_tune.json`` ({} if none)."""
    import MMSA

    with open(Path(MMSA.__file__).parent / "config" / "config_tune.json") as f:
        debug = json.load(f).get(model, {}).get("debugParams", {})
    return {key: list(debug[key]) for key in debug.get("d_paras", []) if isinstance(debug.get(key), list)}


def search_space(model: str) -> Dict[str, list]:
    """The declared space of ``model`` (ours: ``SEARCH_SPACE`` beside its defaults; MMSA's: its tune lists)."""
    if model in our_models():
        from ...registry import get_entry

        space = dict(get_entry(model).search_space)
    else:
        space = mmsa_tune_lists(model)
    if not space:
        raise ConfigError(f"model '{model}' declares no search space: add SEARCH_SPACE beside its DEFAULTS "
                          f"(ours) or a config_tune.json entry (MMSA's)")
    return space


def check_space(model: str, space: Mapping[str, list], args: Mapping) -> None:
    """Every searched key is one of the model's config keys and has at least one candidate."""
    if not space:
        raise ConfigError(f"model '{model}' has nothing to search: none of its declared keys is in its config")
    unknown = sorted(k for k in space if k not in args)
    if unknown:
        raise ConfigError(f"the search space of '{model}' names {', '.join(unknown)}, which its config lacks: "
                          f"fix SEARCH_SPACE or the config")
    empty = sorted(k for k, values in space.items() if not values)
    if empty:
        raise ConfigError(f"the search space of '{model}' has no candidates for {', '.join(empty)}")


def encode(value):
    """A candidate as Optuna stores it: itself when plain, else JSON text."""
    return value if isinstance(value, _PLAIN) else _ENCODED + json.dumps(value)


def decode(value):
    if isinstance(value, str) and value.startswith(_ENCODED):
        return json.loads(value[len(_ENCODED):])
    return value


def decode_params(params: Mapping) -> dict:
    """Sampled parameters as config values."""
    return {key: decode(value) for key, value in params.items()}


def distributions(space: Mapping[str, list]) -> dict:
    """The space as Optuna distributions (one categorical per key), the form both backends sample from."""
    from optuna.distributions import CategoricalDistribution

    return {key: CategoricalDistribution([encode(v) for v in values]) for key, values in space.items()}


def choices(space: Mapping[str, list]) -> List[str]:
    return [f"{key}: {', '.join(map(str, values))}" for key, values in space.items()]
