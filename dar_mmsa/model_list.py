"""Which registered models can run with a given config file, and why the others cannot.

Every model MMSA 2.2.1 knows is registered, but only those with an entry in the config file can
run (ours always have one: MMSA's config loaders add it, ``dar_mmsa.config.merged_config_file``),
and the benchmark's protocol corrupts BERT token ids, so it also needs ``use_bert``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .errors import ConfigError
from .registry import list_models


def _entry_uses_bert(entry: dict) -> bool:
    params = dict(entry.get("commonParams", {}))
    for dataset_params in entry.get("datasetParams", {}).values():
        params.update(dataset_params)
        break
    return bool(params.get("use_bert"))


def _read(config_file: Path) -> dict:
    try:
        with open(config_file) as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read config file {config_file} ({err}): pass an existing --config") from None


def model_availability(config_file=None, *, benchmark: bool = True) -> Tuple[List[str], Dict[str, str]]:
    """(runnable models, {other model: why it cannot run}) for ``config_file`` (default: ours)."""
    from .config import default_config_file, mmsa_default_config, our_entry
    from .registry import our_models

    config_file = Path(config_file) if config_file else default_config_file()
    config, mmsa = _read(config_file), mmsa_default_config()
    runnable, others = [], {}
    for name in list_models():
        entry = config.get(name) or (our_entry(name) if name in our_models() else None)
        if entry is None:
            glove = name in mmsa and not _entry_uses_bert(mmsa[name])
            others[name] = (f"no entry in {config_file.name}" +
                            ("; reads GloVe text features, which the protocol cannot corrupt" if benchmark and glove
                             else "; add one (e.g. MMSA's own) and pass --config"))
        elif benchmark and not _entry_uses_bert(entry):
            others[name] = "reads GloVe text features: the protocol corrupts BERT token ids ([UNK])"
        else:
            runnable.append(name)
    return runnable, others


def availability_text(config_file=None, *, benchmark: bool = True, describe=None) -> str:
    """Runnable models first (one per line, ``describe(name)`` after the name), then the others with why."""
    runnable, others = model_availability(config_file, benchmark=benchmark)
    lines = ["runnable:"]
    lines += [f"  {name:12} {describe(name) if describe else ''}".rstrip() for name in runnable]
    if others:
        lines.append("not runnable with this config:")
        lines += [f"  {name:12} {why}" for name, why in others.items()]
    return "\n".join(lines)


def unknown_model_message(name: str, config_file=None, *, benchmark: bool = True) -> Optional[str]:
    """The one-line error for a name that is not a registered model (None if it is one)."""
    if name.lower() in list_models():
        return None
    runnable, _ = model_availability(config_file, benchmark=benchmark)
    return (f"unknown model '{name}': runnable models are {', '.join(runnable)} "
            f"(--list-models also lists the others and why they cannot run)")
