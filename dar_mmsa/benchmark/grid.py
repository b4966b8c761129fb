"""What a benchmark runs: training runs (model x dataset x seed x training config) and the test
conditions each trained model is evaluated under.

A training run is identified by ``run_id`` = model, dataset, seed and a hash of the merged MMSA
arguments that affect training (:func:`training_config_hash`); a condition by its ``key``. The
pair names one stored evaluation.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..data.corruption import MODALITIES
from ..errors import ConfigError

DEFAULT_SEEDS = (1111, 1112, 1113)
DEFAULT_RATES = tuple(round(0.1 * i, 1) for i in range(10))  # 0.0 .. 0.9, the paper's protocol
DEFAULT_DROP_RATES = tuple(round(0.1 * i, 1) for i in range(1, 8))  # 0.1 .. 0.7, random modality drop
PROTOCOLS = ("intra", "inter", "all")

MODALITY_LETTERS = {"text": "L", "audio": "A", "vision": "V"}
LETTER_MODALITIES = {"l": "text", "t": "text", "a": "audio", "v": "vision"}
# The 7 non-empty modality subsets, in the order of the inter-modal table.
SUBSETS: Tuple[Tuple[bool, bool, bool], ...] = (
    (True, False, False), (False, True, False), (False, False, True),
    (True, True, False), (True, False, True), (False, True, True),
    (True, True, True),
)

# Arguments that say where things are or what runs them, not what is trained.
NON_TRAINING_KEYS = frozenset({
    "featurePath", "dataset_root_dir", "custom_feature", "feature_T", "feature_A", "feature_V",
    "pretrained", "model_save_path", "model_save_dir", "res_save_dir", "log_dir",
    "device", "gpu_ids", "num_workers", "seed", "cur_seed",
})


def _rate(value) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"missing rate '{value}' is not a number: give rates in [0, 1]") from None
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"missing rate {value} is outside [0, 1]: give rates in [0, 1], e.g. 0.0 0.5 0.9")
    return round(rate, 6)


def _fmt(rate: float) -> str:
    """0.0, 0.3, 0.25: one decimal at least, more only when needed."""
    return f"{rate:.1f}" if round(rate, 1) == rate else f"{rate:g}"


def subset_label(present: Sequence[bool]) -> str:
    """"L+A+V" style name of a modality subset."""
    return "+".join(MODALITY_LETTERS[m] for m, p in zip(MODALITIES, present) if p)


@dataclass(frozen=True)
class Condition:
    """One way of damaging the test set.

    ``intra``: positions dropped at ``rates`` = (text, audio, vision) missing rates (the paper's
    protocol when all three are equal). ``subset``: only the modalities in ``present`` are there.
    ``drop``: whole modalities dropped at random at ``rates[0]`` (at least one kept).
    ``masks`` (intra only): ``ours`` (``dar_mmsa.data.corruption``) or ``lnln`` (LNLN's reference
    masks, ``dar_mmsa.data.lnln_masks``); ``lnln`` conditions get their own keys (``-lnln``).
    """

    protocol: str
    rates: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    present: Tuple[bool, bool, bool] = (True, True, True)
    masks: str = "ours"

    @classmethod
    def intra(cls, rate, masks: str = "ours") -> "Condition":
        r = _rate(rate)
        return cls("intra", (r, r, r), masks=check_masks(masks))

    @classmethod
    def intra_per_modality(cls, rates: Mapping[str, float], masks: str = "ours") -> "Condition":
        return cls("intra", tuple(_rate(rates.get(m, 0.0)) for m in MODALITIES), masks=check_masks(masks))

    @classmethod
    def subset(cls, present: Sequence[bool]) -> "Condition":
        present = tuple(bool(p) for p in present)
        if len(present) != 3 or not any(present):
            raise ConfigError(f"modality subset {present} must name 1 to 3 of text, audio, vision")
        return cls("subset", present=present)

    @classmethod
    def drop(cls, rate) -> "Condition":
        r = _rate(rate)
        return cls("drop", (r, r, r))

    @property
    def rate(self) -> Optional[float]:
        """The single missing rate, or None (per-modality rates, or a subset)."""
        if self.protocol == "subset" or len(set(self.rates)) != 1:
            return None
        return self.rates[0]

    @property
    def key(self) -> str:
        """File-name-safe identity, e.g. ``intra-0.3``, ``intra-l0.2-a0.5-v0.5``, ``subset-LV``, ``drop-0.3``."""
        if self.protocol == "subset":
            return "subset-" + subset_label(self.present).replace("+", "")
        suffix = "" if self.masks == "ours" else f"-{self.masks}"  # ours: the keys of existing stores
        if self.rate is not None:
            return f"{self.protocol}-{_fmt(self.rate)}{suffix}"
        return "intra-" + "-".join(f"{MODALITY_LETTERS[m].lower()}{_fmt(r)}"
                                   for m, r in zip(MODALITIES, self.rates)) + suffix

    @property
    def label(self) -> str:
        """What tables and figures print: ``0.3``, ``l=0.2 a=0.5 v=0.5``, ``L+V``, ``drop 0.3``."""
        if self.protocol == "subset":
            return subset_label(self.present)
        if self.protocol == "drop":
            return f"drop {_fmt(self.rates[0])}"
        if self.rate is not None:
            return _fmt(self.rate)
        return " ".join(f"{MODALITY_LETTERS[m].lower()}={_fmt(r)}" for m, r in zip(MODALITIES, self.rates))

    def to_record(self) -> dict:
        return {"protocol": self.protocol, "key": self.key, "label": self.label, "rate": self.rate,
                "rate_text": self.rates[0], "rate_audio": self.rates[1], "rate_vision": self.rates[2],
                "present": list(self.present), "masks": self.masks}

    @classmethod
    def from_record(cls, record: Mapping) -> "Condition":
        rates = tuple(float(record[f"rate_{m}"]) for m in MODALITIES)
        return cls(record["protocol"], rates, tuple(bool(p) for p in record["present"]),
                   record.get("masks", "ours"))


MASK_SCHEMES = ("ours", "lnln")


def check_masks(masks: str) -> str:
    if masks not in MASK_SCHEMES:
        raise ConfigError(f"unknown mask scheme '{masks}': choose one of {', '.join(MASK_SCHEMES)}")
    return masks


def parse_rates_per_modality(tokens: Iterable[str]) -> List[Dict[str, float]]:
    """``["l=0.2", "a=0.5", "v=0.5"]`` -> ``[{"text": 0.2, "audio": 0.5, "vision": 0.5}]``.

    A token may hold several comma-separated assignments; a modality named again starts a new
    setting, so ``l=0 a=0.9 l=0.5 v=0.5`` gives two. Modalities not named get rate 0.
    """
    settings: List[Dict[str, float]] = []
    current: Dict[str, float] = {}
    for token in tokens:
        for part in filter(None, str(token).split(",")):
            letter, sep, value = part.partition("=")
            modality = LETTER_MODALITIES.get(letter.strip().lower())
            if not sep or modality is None:
                raise ConfigError(f"per-modality rate '{part}' is not of the form l=R, a=R or v=R "
                                  f"(e.g. --rates-per-modality l=0.2 a=0.5 v=0.5)")
            if modality in current:
                settings.append(current)
                current = {}
            current[modality] = _rate(value)
    if current:
        settings.append(current)
    return settings


def conditions_for(protocol: str, rates: Sequence = DEFAULT_RATES, drop_rates: Sequence = DEFAULT_DROP_RATES,
                   rates_per_modality: Optional[Sequence[Mapping[str, float]]] = None,
                   masks: str = "ours") -> List[Condition]:
    """The test conditions of a protocol: ``intra`` (the rate grid, or the per-modality settings
    when given, with the ``masks`` scheme), ``inter`` (the 7 subsets and the random-drop rates), or ``all``."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol '{protocol}': choose one of {', '.join(PROTOCOLS)}")
    check_masks(masks)
    conditions: List[Condition] = []
    if protocol in ("intra", "all"):
        if rates_per_modality:
            conditions += [Condition.intra_per_modality(r, masks) for r in rates_per_modality]
        else:
            conditions += [Condition.intra(r, masks) for r in rates]
    if protocol in ("inter", "all"):
        conditions += [Condition.subset(p) for p in SUBSETS]
        conditions += [Condition.drop(r) for r in drop_rates]
    unique = list(dict.fromkeys(conditions))
    if not unique:
        raise ConfigError("no test conditions: give at least one missing rate")
    return unique


def training_config_hash(args: Mapping) -> str:
    """sha256 of the merged arguments that affect training (paths, device and seed excluded)."""
    relevant = {k: v for k, v in dict(args).items() if k not in NON_TRAINING_KEYS}
    text = json.dumps(relevant, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class TrainingRun:
    """One (model, dataset, seed, training config): trained once, evaluated under every condition."""

    model: str
    dataset: str
    seed: int
    config_hash: str
    conditions: Tuple[Condition, ...] = field(default=(), compare=False)

    @property
    def run_id(self) -> str:
        return f"{self.model}-{self.dataset}-{self.seed}-{self.config_hash[:12]}"

    @property
    def title(self) -> str:
        return f"{self.model}/{self.dataset}/seed {self.seed}"
