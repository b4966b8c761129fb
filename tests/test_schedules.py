"""The ALMT/LNLN warm-up + cosine schedule: the spec's values, and PyTorch's own cosine as a check."""
import math

import pytest
import torch

from dar_mmsa.errors import ConfigError
from dar_mmsa.training.schedules import warmup_cosine_factor, warmup_cosine_lengths, warmup_cosine_scheduler

LR = 1e-4
# spec §3.2, read off the reference scheduler for max_epochs 200 (rounded to 3 significant digits)
SPEC_LR = {1: 0.0, 11: 5e-5, 22: 1e-4, 50: 9.41e-5, 100: 6.04e-5, 200: 3.05e-8}


@pytest.mark.parametrize("epoch, expected", sorted(SPEC_LR.items()))
def test_spec_examples(epoch, expected):
    assert LR * warmup_cosine_factor(epoch, 200) == pytest.approx(expected, rel=2e-3, abs=1e-12)


def test_warmup_is_linear_and_reaches_one():
    assert [warmup_cosine_factor(e, 200) for e in (1, 2, 21, 22)] == [0.0, 1 / 20, 1.0, 1.0]
    assert warmup_cosine_lengths(200) == (20, 180)


def test_cosine_part_equals_torch_cosine_annealing():
    """Epochs >= 22 follow CosineAnnealingLR(T_max=180) stepped from epoch 22, periodic beyond T_max."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=LR)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=180, eta_min=0)
    for epoch in range(22, 260):
        assert LR * warmup_cosine_factor(epoch, 200) == pytest.approx(optimizer.param_groups[0]["lr"], abs=1e-12)
        optimizer.step()
        cosine.step()


def test_scheduler_applies_factor_per_epoch():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=LR)
    scheduler = warmup_cosine_scheduler(optimizer, 200)
    seen = {}
    for epoch in range(1, 201):
        seen[epoch] = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
    for epoch, expected in SPEC_LR.items():
        assert seen[epoch] == pytest.approx(expected, rel=2e-3, abs=1e-12)


def test_skip_zero_lr_epoch_shifts_by_one():
    assert warmup_cosine_factor(1, 200, skip_zero_lr_epoch=True) == pytest.approx(1 / 20)
    for epoch in (1, 10, 21, 50, 199):
        assert warmup_cosine_factor(epoch, 200, True) == warmup_cosine_factor(epoch + 1, 200)
    assert all(warmup_cosine_factor(e, 200, True) > 0 for e in range(1, 201))


def test_generalises_to_other_lengths():
    assert warmup_cosine_lengths(50) == (5, 45)
    assert warmup_cosine_factor(6, 50) == 1.0
    assert warmup_cosine_factor(7 + 45, 50) == pytest.approx(0.0, abs=1e-12)  # cosine bottom after T_max
    # short runs: at least one warm-up epoch and T_max 1, so every value is defined
    assert warmup_cosine_lengths(2) == (1, 1)
    assert [warmup_cosine_factor(e, 2) for e in (1, 2, 3)] == [0.0, 1.0, 1.0]
    assert warmup_cosine_factor(4, 2) == pytest.approx(0.0, abs=1e-12)
    assert math.isclose(warmup_cosine_factor(5, 2), 1.0)


def test_bad_max_epochs_is_a_config_error():
    with pytest.raises(ConfigError, match="max_epochs"):
        warmup_cosine_factor(1, 0)
