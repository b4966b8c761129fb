"""Learning-rate schedules, as closed-form multipliers of the base learning rate per epoch.

ALMT (MMSA master) and LNLN use the same schedule (spec ``baselines.md`` §3.2): a linear
warm-up over ``0.1 * max_epochs`` epochs, then ``CosineAnnealingLR(T_max=0.9 * max_epochs,
eta_min=0)``, stepped once per epoch. Run through the reference scheduler it gives, for epoch
``e`` (1-based) and ``max_epochs = 200``::

    e = 1          -> 0               (the first epoch trains at lr 0)
    2 <= e <= 21   -> (e - 1) / 20
    e >= 22        -> (1 + cos(pi * (e - 22) / 180)) / 2   (periodic beyond T_max, as PyTorch's)

:func:`warmup_cosine_factor` is that formula for any ``max_epochs``, with
``warmup = floor(0.1 * max_epochs)`` and ``T_max = floor(0.9 * max_epochs)`` (each at least 1, so
short test runs are defined; the reference divides by zero there).
"""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError


def warmup_cosine_lengths(max_epochs: int) -> tuple:
    """(warm-up epochs, cosine T_max) for a schedule shaped by ``max_epochs``."""
    if int(max_epochs) < 1:
        raise ConfigError(f"max_epochs must be a positive integer, got {max_epochs!r}: set it to e.g. 200")
    # round first: 0.1 * 70 is 7.000000000000001 and a plain floor would be fragile near integers
    warmup = max(1, math.floor(round(0.1 * max_epochs, 9)))
    t_max = max(1, math.floor(round(0.9 * max_epochs, 9)))
    return warmup, t_max


def warmup_cosine_factor(epoch: int, max_epochs: int, skip_zero_lr_epoch: bool = False) -> float:
    """The multiplier of the base learning rate in (1-based) ``epoch``.

    With ``skip_zero_lr_epoch`` the schedule starts one epoch later (epoch e gets the reference's
    value for e + 1), so no epoch runs at lr 0 -- the corrected behaviour; the default reproduces
    the reference, whose first epoch only advances AdamW's moments and step count.
    """
    if epoch < 1:
        raise ValueError(f"epochs are 1-based, got {epoch}")
    e = epoch + 1 if skip_zero_lr_epoch else epoch
    warmup, t_max = warmup_cosine_lengths(max_epochs)
    if e <= warmup + 1:
        return (e - 1) / warmup
    return (1.0 + math.cos(math.pi * (e - warmup - 2) / t_max)) / 2.0


def warmup_cosine_scheduler(optimizer: torch.optim.Optimizer, max_epochs: int,
                            skip_zero_lr_epoch: bool = False) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-epoch scheduler applying :func:`warmup_cosine_factor`; call ``step()`` once per epoch.

    ``LambdaLR`` counts steps from 0, so after ``k`` steps the optimiser runs epoch ``k + 1``.
    """
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda steps: warmup_cosine_factor(steps + 1, max_epochs, skip_zero_lr_epoch)
    )
