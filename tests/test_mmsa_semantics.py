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


# ----------------------------------------------------------------------------- the harness (issue 21)
def _settings(tmp_path, **extra):
    from dar_mmsa.benchmark.plan import Settings

    return Settings(models=("misa",), datasets=("mosi",), seeds=(1111,), conditions=(), device=torch.device("cpu"),
                    config_file=None, overrides={}, store=None, **extra)


def test_mmsa_corrections_are_recorded_off_and_change_the_hash(tmp_path, tiny_bert, small_mosi_root):
    from dar_mmsa.benchmark.grid import training_config_hash
    from dar_mmsa.benchmark.plan import build_args

    settings = _settings(tmp_path, data_root=small_mosi_root, pretrained=tiny_bert)
    stock = build_args(settings, "misa", "mosi", 1111)
    assert stock["pad_past_lengths"] is False and stock["sample_weighted_loss"] is False
    padded = build_args(settings, "misa", "mosi", 1111, overrides={"pad_past_lengths": True})
    assert padded["pad_past_lengths"] is True and training_config_hash(padded) != training_config_hash(stock)
    ours = build_args(settings, "dar", "mosi", 1111)
    assert "pad_past_lengths" not in ours and "sample_weighted_loss" not in ours  # ours always pad


def test_modality_files_enter_the_hash_by_content(tmp_path, tiny_bert, small_mosi_root):
    import shutil

    from dar_mmsa.benchmark.grid import training_config_hash
    from dar_mmsa.benchmark.plan import build_args
    from dar_mmsa.data.synthetic import feature_path

    settings = _settings(tmp_path, data_root=small_mosi_root, pretrained=tiny_bert)
    mosi = feature_path(small_mosi_root, "mosi", aligned=False)
    copy = shutil.copy(mosi, tmp_path / "copy.pkl")
    plain = training_config_hash(build_args(settings, "dar", "mosi", 1111))
    with_a = build_args(settings, "dar", "mosi", 1111, overrides={"feature_A": str(mosi)})
    moved = build_args(settings, "dar", "mosi", 1111, overrides={"feature_A": str(copy)})
    assert with_a["feature_A_fingerprint"].startswith("sha256:")
    assert training_config_hash(with_a) != plain and training_config_hash(with_a) == training_config_hash(moved)
    with pytest.raises(ConfigError, match="feature_V file .* not found"):
        build_args(settings, "dar", "mosi", 1111, overrides={"feature_V": str(tmp_path / "none.pkl")})


def test_data_root_order(tmp_path, monkeypatch):
    import json

    from dar_mmsa.benchmark.plan import pick_data_root
    from dar_mmsa.config import build_config

    given, env, configured = (tmp_path / name for name in ("given", "env", "configured"))
    configured.mkdir()
    config = build_config()
    config["datasetCommonParams"]["dataset_root_dir"] = str(configured)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    monkeypatch.setenv("DAR_MMSA_DATA_ROOT", str(env))
    assert pick_data_root(given, config_file) == (given, "--data-root")
    assert pick_data_root(None, config_file) == (env, "$DAR_MMSA_DATA_ROOT")
    monkeypatch.delenv("DAR_MMSA_DATA_ROOT")
    assert pick_data_root(None, config_file) == (configured, f"dataset_root_dir of {config_file}")
    configured.rmdir()  # a dataset_root_dir that does not exist here (MMSA's own file names one)
    root, source = pick_data_root(None, config_file)
    assert root is None and source.startswith("synthetic")
    assert pick_data_root(None, None)[0] is None  # our config: empty dataset_root_dir
