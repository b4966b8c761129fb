"""The model registry: which models exist, ours and MMSA's, and their default configs.

A model file declares its ``nn.Module`` with ``@register_model(name, trainer=..., defaults=...,
search_space=...)``: its MMSA-format defaults and the hyperparameters a tuning search may try
(``{key: [candidate values]}``, MMSA's ``config_tune.json`` ``d_paras`` style).
Nothing here touches MMSA's internals: :mod:`dar_mmsa.mmsa_hooks` teaches MMSA to build the
registered models (``import dar_mmsa`` runs its ``register()``).
"""
from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Union

from .errors import ConfigError

DATASETS = ("mosi", "mosei", "sims")  # MMSA's three; "sims" is CH-SIMS (Chinese, labels in [-1, 1])
ENV_DATA_ROOT = "DAR_MMSA_DATA_ROOT"
ENV_PRETRAINED = "DAR_MMSA_PRETRAINED"


@dataclass(frozen=True)
class ModelEntry:
    """A model of ours: its module, its trainer, and its MMSA-format default config."""

    name: str
    model: type
    trainer: Union[str, type]  # "package.module:Class" is imported lazily (no import cycles)
    defaults: dict  # {"commonParams": {...}, "datasetParams": {"mosi": {...}, "mosei": {...}}}
    description: str = ""
    labels: dict = field(default_factory=dict)  # e.g. {"display": "DERL-style (from the abstract)"}
    search_space: dict = field(default_factory=dict)  # {config key: [candidate values]} for tuning

    def trainer_class(self) -> type:
        if isinstance(self.trainer, str):
            module, _, attr = self.trainer.partition(":")
            return getattr(importlib.import_module(module), attr)
        return self.trainer

    @property
    def display_name(self) -> str:
        return self.labels.get("display", self.name)


_MODELS: Dict[str, ModelEntry] = {}


def register_model(name: str, *, trainer, defaults: dict, description: str = "", search_space: Optional[dict] = None,
                   **labels) -> Callable:
    """Class decorator: ``@register_model("dar", trainer="dar_mmsa.training.dar:DARTrainer", defaults=...)``."""

    def decorate(cls):
        _MODELS[name.lower()] = ModelEntry(name.lower(), cls, trainer, defaults, description, labels,
                                           dict(search_space or {}))
        return cls

    return decorate


def our_models() -> List[str]:
    return sorted(_MODELS)


def get_entry(name: str) -> ModelEntry:
    try:
        return _MODELS[name.lower()]
    except KeyError:
        raise ConfigError(f"'{name}' is not one of our models: {', '.join(our_models())}") from None


def mmsa_models() -> List[str]:
    """The model names MMSA 2.2.1 itself can build (its trainer map)."""
    from MMSA.trains import ATIO

    return sorted(ATIO().TRAIN_MAP)


def list_models(pattern: str = "*") -> List[str]:
    """Every runnable model name, ours and MMSA's, optionally filtered by a glob pattern."""
    return sorted(n for n in set(our_models()) | set(mmsa_models()) if fnmatch.fnmatch(n, pattern.lower()))


def check_model(name: str) -> str:
    name = name.lower()
    if name not in list_models():
        raise ConfigError(f"unknown model '{name}': choose one of {', '.join(list_models())}")
    return name


def check_dataset(name: str) -> str:
    name = name.lower()
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset '{name}': choose one of {', '.join(DATASETS)}")
    return name


def check_model_dataset(model: str, dataset: str) -> None:
    """One line when a model of ours declares a dataset unsupported (``unsupported={dataset: why}``
    in its ``register_model``), e.g. TETFN on CH-SIMS."""
    entry = _MODELS.get(model.lower())
    why = entry.labels.get("unsupported", {}).get(dataset.lower()) if entry is not None else None
    if why:
        usable = [d for d in DATASETS if d not in entry.labels["unsupported"]]
        raise ConfigError(f"model '{model.lower()}' does not run on '{dataset.lower()}' ({why}): "
                          f"choose {' or '.join(usable)}")


# ----------------------------------------------------------------------------- run state
class RunState:
    """What MMSA does not pass to trainers: the seed of the run in progress."""

    seed: Optional[int] = None


def current_seed(args=None) -> int:
    """The seed of the current run: ``args.seed`` if set, else the one MMSA_run last set up."""
    if args is not None and args.get("seed") is not None:
        return int(args["seed"])
    if RunState.seed is not None:
        return int(RunState.seed)
    return 1111
