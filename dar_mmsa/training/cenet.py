"""CENET's trainer (MMSA master ``trains/singleTask/CENET.py`` behaviour, spec §1.2).

L1 loss; Adam with coupled L2 weight decay over three name-based parameter groups; the global
gradient norm clipped to ``max_grad_norm`` (2) every step (-1: no clipping, MMSA's convention); no
scheduler; early stopping on the validation L1 after ``early_stop`` (8) epochs without improvement. The reference has no epoch cap:
``max_epochs`` (default 1000) is only a safety cap.
"""
from __future__ import annotations

from typing import Dict, List

import torch
from torch import nn

from .base import Trainer, clip_gradients, max_grad_norm

NO_DECAY_MARKERS = ("bias", "LayerNorm.weight")
CE_MARKER = "cross_modal_enhancement"


def cenet_parameter_groups(model: nn.Module, learning_rate: float, weight_decay: float) -> List[Dict]:
    """The reference's three groups, chosen by parameter name (frozen parameters left out):

    1. non-CE weights (no ``bias`` / ``LayerNorm.weight`` in the name): ``weight_decay``;
    2. every CE-module parameter, biases included: ``weight_decay``;
    3. non-CE biases and LayerNorm weights: no decay.
    All groups share ``learning_rate``.
    """
    decayed, enhancement, not_decayed = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if CE_MARKER in name:
            enhancement.append(param)
        elif any(marker in name for marker in NO_DECAY_MARKERS):
            not_decayed.append(param)
        else:
            decayed.append(param)
    return [
        {"params": decayed, "lr": learning_rate, "weight_decay": weight_decay},
        {"params": enhancement, "lr": learning_rate, "weight_decay": weight_decay},
        {"params": not_decayed, "lr": learning_rate, "weight_decay": 0.0},
    ]


class CENETTrainer(Trainer):
    criterion = nn.L1Loss()

    def __init__(self, args):
        super().__init__(args)
        self.max_grad_norm = max_grad_norm(args, default=2.0)

    def build_optimizers(self, model: nn.Module) -> List[torch.optim.Optimizer]:
        groups = cenet_parameter_groups(model, float(self.args["learning_rate"]), float(self.args["weight_decay"]))
        return [torch.optim.Adam(groups, lr=float(self.args["learning_rate"]),
                                 eps=float(self.args.get("adam_epsilon") or 1e-8))]

    def clip(self, model: nn.Module, optimizer) -> None:
        self.unscale(optimizer)
        clip_gradients((p for p in model.parameters() if p.grad is not None), self.max_grad_norm)
