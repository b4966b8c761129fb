"""The two small synthetic runs of ``run_benchmark.py``: their models, seeds, data scale, config
overrides and test rates (flags given explicitly win over them).

``--smoke``: does the pipeline run? Two epochs; the models do not learn (tests, CI).
``--quick``: the README's main job, trained longer so that the models learn; the summary says
whether each did (``learned.py``). How its settings were chosen, and what they cost: README,
"Quick start".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from ..errors import ConfigError
from .grid import DEFAULT_SEEDS

SMOKE_MODELS = ("dar", "misa")
SMOKE_SEEDS = DEFAULT_SEEDS
SMOKE_SCALE = 0.1  # of the real split sizes: MOSI 128 / 23 / 69 samples
SMOKE_OVERRIDES = {"max_epochs": 2, "epoch_cap": 2, "batch_size": 16}  # epoch_cap: ALMT (max_epochs shapes its schedule)
SMOKE_RATES = None  # None: the default grid 0.0 .. 0.9

QUICK_MODELS = ("dar", "misa")
QUICK_SEEDS = (1111,)  # one training per model: the paired bootstrap resamples the test samples
QUICK_SCALE = 0.1
# aligned features: 50 frames per modality instead of 375/500; one batch size for every model (8:
# DAR's own 64 gives it 2 updates per epoch at this scale) and each model's early stopping;
# max_epochs also shapes DAR's warm-up + cosine schedule
QUICK_OVERRIDES = {"max_epochs": 12, "epoch_cap": 12, "batch_size": 8, "need_data_aligned": True}
QUICK_RATES = None


@dataclass(frozen=True)
class Preset:
    name: str
    models: Tuple[str, ...]
    seeds: Tuple[int, ...]
    scale: float
    overrides: dict
    rates: Optional[Tuple[float, ...]] = None


SMOKE = Preset("smoke", SMOKE_MODELS, SMOKE_SEEDS, SMOKE_SCALE, SMOKE_OVERRIDES, SMOKE_RATES)
QUICK = Preset("quick", QUICK_MODELS, QUICK_SEEDS, QUICK_SCALE, QUICK_OVERRIDES, QUICK_RATES)


def pick_preset(quick: bool, smoke: bool = False) -> Optional[Preset]:
    """The preset of the flags given (None: neither)."""
    if quick and smoke:
        raise ConfigError("--quick and --smoke are two different runs: give one of them")
    return QUICK if quick else SMOKE if smoke else None


def preset_overrides(preset: Optional[Preset], datasets: Sequence[str]) -> dict:
    """The preset's config overrides for a run on ``datasets``: aligned features only when every one
    of them ships an aligned file (CH-SIMS has only ``unaligned_39.pkl``)."""
    from ..data.synthetic import ALIGNMENTS

    if preset is None:
        return {}
    overrides = dict(preset.overrides)
    if overrides.get("need_data_aligned") and not all(True in ALIGNMENTS.get(d, (False, True)) for d in datasets):
        del overrides["need_data_aligned"]
    return overrides
