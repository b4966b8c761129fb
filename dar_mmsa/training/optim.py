"""Optimiser parameter groups shared by our trainers: BERT apart from the rest, and no weight
decay on biases and normalisation weights (the usual recipe for fine-tuning BERT; LNLN's and
MMSA's BERT models exempt ``bias`` and ``LayerNorm`` from decay).

``parameter_groups(model, params, lr=..., weight_decay=..., bert=model.text_encoder,
bert_lr=...)`` returns up to four AdamW groups, each named in ``"name"`` so tests and logs can
tell them apart: ``bert``, ``bert_no_decay``, ``other``, ``other_no_decay``.
"""
from __future__ import annotations

from typing import Iterable, List, Optional

from torch import nn


def no_decay(name: str, param: nn.Parameter) -> bool:
    """Biases, LayerNorm/norm weights and other 1-d parameters get no weight decay."""
    lowered = name.lower()
    return param.ndim <= 1 or lowered.endswith(".bias") or "layernorm" in lowered or ".norm" in lowered


def parameter_groups(model: nn.Module, params: Optional[Iterable[nn.Parameter]] = None, *, lr: float,
                     weight_decay: float, bert: Optional[nn.Module] = None, bert_lr: Optional[float] = None,
                     bert_weight_decay: Optional[float] = None, decay_norms: bool = False) -> List[dict]:
    """AdamW groups over ``params`` (default: all of ``model``'s), named parameters taken from ``model``.

    Parameters of the ``bert`` submodule train at ``bert_lr`` (default ``lr``) with
    ``bert_weight_decay`` (default ``weight_decay``). With ``decay_norms`` every parameter gets its
    group's decay (the old behaviour); otherwise biases and norms get none. Frozen parameters
    (``requires_grad`` false) are left out; empty groups are dropped.
    """
    wanted = {id(p) for p in (model.parameters() if params is None else params)}
    in_bert = {id(p) for p in bert.parameters()} if bert is not None else set()
    buckets = {"bert": [], "bert_no_decay": [], "other": [], "other_no_decay": []}
    for name, param in model.named_parameters():
        if id(param) not in wanted or not param.requires_grad:
            continue
        family = "bert" if id(param) in in_bert else "other"
        exempt = not decay_norms and no_decay(name, param)
        buckets[family + ("_no_decay" if exempt else "")].append(param)
    settings = {
        "bert": (bert_lr if bert_lr is not None else lr,
                 bert_weight_decay if bert_weight_decay is not None else weight_decay),
        "other": (lr, weight_decay),
    }
    groups = []
    for key, members in buckets.items():
        if not members:
            continue
        group_lr, group_decay = settings[key.split("_")[0]]
        groups.append({"name": key, "params": members, "lr": float(group_lr),
                       "weight_decay": 0.0 if key.endswith("no_decay") else float(group_decay)})
    return groups
