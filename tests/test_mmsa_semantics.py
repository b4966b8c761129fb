"""Shared config keys mean what they mean in MMSA (issue 9, items 6 and 9)."""
import pytest
import torch
from torch import nn

from dar_mmsa.errors import ConfigError
from dar_mmsa.training.base import Trainer
from dar_mmsa.training.cenet import CENETTrainer


class Tiny(nn.Module):
    """prediction = w . mean(audio) + b."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(2, 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[3.0, -2.0]]))
            self.head.bias.fill_(0.5)

    def forward(self, text, audio, vision):
        return self.head(audio.mean(dim=1))


def _batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"text": torch.zeros(n, 3, 5), "audio": torch.randn(n, 3, 2, generator=g), "vision": torch.zeros(n, 3, 1),
            "labels": {"M": torch.randn(n, generator=g)}, "index": torch.arange(n)}


def _args(tmp_path, **extra):
    return dict({"dataset_name": "mosi", "model_name": "tiny", "learning_rate": 0.0, "weight_decay": 0.0,
                 "model_save_path": str(tmp_path / "m.pth"), "device": "cpu"}, **extra)


def _reference_grads(batch):
    model = Tiny()
    pred = model(batch["text"], batch["audio"], batch["vision"]).view(-1, 1)
    nn.L1Loss()(pred, batch["labels"]["M"].view(-1, 1)).backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("value", [-1, -1.0])
def test_cenet_max_grad_norm_minus_one_means_no_clipping(tmp_path, value):
    trainer = CENETTrainer(_args(tmp_path, max_grad_norm=value))
    model, batch = Tiny(), _batch()
    trainer.train_step(model, trainer.to_batch(batch), trainer.build_optimizers(model))
    for got, want in zip((p.grad for p in model.parameters()), _reference_grads(batch)):
        assert torch.allclose(got, want)  # same sign and size: nothing clipped, nothing flipped


def test_cenet_positive_max_grad_norm_clips(tmp_path):
    trainer = CENETTrainer(_args(tmp_path, max_grad_norm=0.01))
    model, batch = Tiny(), _batch()
    trainer.train_step(model, trainer.to_batch(batch), trainer.build_optimizers(model))
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))
    assert norm == pytest.approx(0.01, rel=1e-4)
    want = torch.cat([g.flatten() for g in _reference_grads(batch)])
    got = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.allclose(got / got.norm(), want / want.norm(), atol=1e-6)


def test_cenet_default_and_zero_max_grad_norm(tmp_path):
    assert CENETTrainer(_args(tmp_path)).max_grad_norm == 2.0
    with pytest.raises(ConfigError, match="max_grad_norm"):
        CENETTrainer(_args(tmp_path, max_grad_norm=0))


def _loaders():
    return {"train": [_batch(4, 1), _batch(4, 2)], "valid": [_batch(4, 3)]}


@pytest.mark.parametrize("early_stop,epochs", [(0, 1), (2, 3), (None, 6)])
def test_early_stop_as_in_mmsa(tmp_path, early_stop, epochs):
    # learning rate 0: the validation loss never improves after epoch 1, so MMSA's rule
    # (stop once epochs - best_epoch >= early_stop) stops after early_stop more epochs (at least 1)
    extra = {"max_epochs": 6} if early_stop is None else {"max_epochs": 6, "early_stop": early_stop}
    trainer = Trainer(_args(tmp_path, **extra))
    history = trainer.do_train(Tiny(), _loaders(), return_epoch_results=True)
    assert len(history["train"]) == epochs
    assert trainer.early_stop == (10 if early_stop is None else early_stop)


def test_lnln_early_stop_zero_is_zero():
    from dar_mmsa.training.lnln import LNLNTrainer

    args = {"dataset_name": "mosi", "max_epochs": 7, "early_stop": 0}
    assert LNLNTrainer(args).early_stop == 0
    assert LNLNTrainer(dict(args, early_stop=None)).early_stop == 7
