"""ALMT's trainer (MMSA master ``trains/singleTask/ALMT.py`` behaviour, spec §3.2).

MSE loss; one AdamW group over every parameter, BERT included (lr 1e-4, weight decay 1e-4, default
betas/eps), no gradient clipping; the warm-up + cosine schedule of
:mod:`dar_mmsa.training.schedules`, shaped by ``max_epochs`` and stepped once per epoch after
validation; the best checkpoint by validation MSE; early stopping after ``early_stop`` (32) epochs
without improvement.

Epochs: the reference has no epoch cap, so ``max_epochs`` (200) only shapes the schedule and
training ends by early stopping. ``epoch_cap`` (null by default) bounds the number of epochs when
set -- use it for short runs instead of lowering ``max_epochs``, which would reshape the schedule.
``skip_zero_lr_epoch`` (false by default) removes the reference's lr-0 first epoch.
"""
from __future__ import annotations

import numbers
import sys
from typing import List

import torch
from torch import nn

from ..errors import ConfigError
from .base import Trainer
from .schedules import warmup_cosine_scheduler


def epoch_limit(args) -> int:
    """The loop bound: ``epoch_cap`` when set, else unbounded (early stopping ends training)."""
    cap = args.get("epoch_cap")
    if cap is None:
        return sys.maxsize
    if isinstance(cap, bool) or not isinstance(cap, numbers.Integral) or cap < 1:
        raise ConfigError(f"epoch_cap must be a positive integer or null, got {cap!r}")
    return int(cap)


class ALMTTrainer(Trainer):
    criterion = nn.MSELoss()

    def __init__(self, args):
        super().__init__(args)
        self.schedule_epochs = int(args.get("max_epochs") or 200)
        self.max_epochs = epoch_limit(args)
        self.skip_zero_lr_epoch = bool(args.get("skip_zero_lr_epoch", False))

    def build_optimizers(self, model: nn.Module) -> List[torch.optim.Optimizer]:
        return [torch.optim.AdamW(model.parameters(), lr=float(self.args["learning_rate"]),
                                  weight_decay=float(self.args["weight_decay"]))]

    def build_schedulers(self, optimizers) -> list:
        return [warmup_cosine_scheduler(opt, self.schedule_epochs, self.skip_zero_lr_epoch) for opt in optimizers]
