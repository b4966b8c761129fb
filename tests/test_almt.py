"""ALMT (MMSA master port): shapes, parameter counts, AHL initialisation, the trainer's loss,
optimiser and schedule, no epoch cap, a short training run and one MMSA_run."""
import pytest
import torch

from dar_mmsa.errors import ConfigError
from dar_mmsa.models.almt import ALMT, DEFAULTS
from dar_mmsa.training.almt import ALMTTrainer
from model_inputs import inputs, text_batch
from model_inputs import model_args as shared_model_args
from mmsa_run import run_through_mmsa, validation_losses

SPEC_PARAMETERS = {"mosi": 2_603_649, "mosei": 3_223_041}  # spec §3.1, BERT excluded
# training-run tests use the aligned_50 files (T = 50 instead of 375/500): ~10x less compute on CPU
ALIGNED = {"need_data_aligned": True, "featurePath": "MOSI/Processed/aligned_50.pkl"}
SPEC_POSITIONS = {  # spec §3.1: learnable positional-embedding shapes
    "mosi": {"text": (1, 58, 128), "audio": (1, 383, 128), "vision": (1, 508, 128)},
    "mosei": {"text": (1, 58, 128), "audio": (1, 508, 128), "vision": (1, 508, 128)},
}


def model_args(dataset, pretrained, **overrides):
    return shared_model_args(DEFAULTS, "almt", dataset, pretrained, **overrides)


def non_bert_parameters(model):
    return sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in model.bert.parameters())


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_forward_shape_and_parameter_count(dataset, tiny_bert):
    torch.manual_seed(0)
    model = ALMT(model_args(dataset, tiny_bert)).eval()
    with torch.no_grad():
        out = model(*inputs(dataset, batch=3))
    assert isinstance(out, torch.Tensor) and out.shape == (3, 1) and torch.isfinite(out).all()
    assert non_bert_parameters(model) == SPEC_PARAMETERS[dataset]
    for name, shape in SPEC_POSITIONS[dataset].items():
        assert tuple(model.embeddings[name].encoder.pos_embedding.shape) == shape
    assert tuple(model.language_encoder.pos_embedding.shape) == (1, 8, 128)
    assert tuple(model.fusion.pos_source.shape) == tuple(model.fusion.pos_target.shape) == (1, 9, 128)
    assert len(model.fusion.encoder.layers) == {"mosi": 2, "mosei": 4}[dataset]


def test_hyper_modality_starts_at_ones_and_everything_learns(tiny_bert):
    torch.manual_seed(0)
    model = ALMT(model_args("mosi", tiny_bert)).train()
    assert torch.equal(model.h_hyper.detach(), torch.ones(1, 8, 128))
    assert len(model.hyper_modality.layers) == 3 and len(model.language_encoder.encoder.layers) == 2
    model(*inputs("mosi")).sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if not n.startswith("bert.model.pooler"))


def test_shorter_inputs_work_and_longer_ones_fail_clearly(tiny_bert):
    torch.manual_seed(0)
    model = ALMT(model_args("mosi", tiny_bert)).eval()
    with torch.no_grad():  # aligned_50-style lengths are shorter than feature_length: positions are sliced
        assert model(text_batch(), torch.randn(2, 50, 5), torch.randn(2, 50, 20)).shape == (2, 1)
    with pytest.raises(ConfigError, match="feature_length"):
        ALMT(model_args("mosi", tiny_bert, seq_lens=(50, 400, 500)))
    with pytest.raises(ConfigError, match="fusion_layer_depth"):
        ALMT(model_args("mosi", tiny_bert, fusion_layer_depth=None))


def test_trainer_uses_mse_one_adamw_group_and_warmup(tiny_bert):
    torch.manual_seed(0)
    args = model_args("mosi", tiny_bert)
    model = ALMT(args).train()
    trainer = ALMTTrainer(args)
    optimizers = trainer.build_optimizers(model)
    (optimizer,) = optimizers
    assert type(optimizer) is torch.optim.AdamW and len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert group["lr"] == 1e-4 and group["weight_decay"] == 1e-4
    assert {id(p) for p in group["params"]} == {id(p) for p in model.parameters()}  # BERT included
    (scheduler,) = trainer.build_schedulers(optimizers)
    assert optimizer.param_groups[0]["lr"] == 0.0  # the reference's first epoch runs at lr 0
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4 / 20)

    text, audio, vision = inputs("mosi")
    batch = {"text": text, "audio": audio, "vision": vision, "labels": torch.tensor([[1.0], [-2.0]])}
    pred, loss = trainer.train_step(model, batch, optimizers)
    assert loss == pytest.approx(((pred - batch["labels"]) ** 2).mean().item(), rel=1e-5)


def test_epoch_cap_and_schedule_switches(tiny_bert):
    args = model_args("mosi", tiny_bert)
    trainer = ALMTTrainer(args)
    assert trainer.schedule_epochs == 200 and trainer.max_epochs > 10**9  # no cap by default
    assert ALMTTrainer(model_args("mosi", tiny_bert, epoch_cap=3)).max_epochs == 3
    with pytest.raises(ConfigError, match="epoch_cap"):
        ALMTTrainer(model_args("mosi", tiny_bert, epoch_cap=0))
    skipping = ALMTTrainer(model_args("mosi", tiny_bert, skip_zero_lr_epoch=True))
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    skipping.build_schedulers([optimizer])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4 / 20)


class _Samples(torch.utils.data.Dataset):
    """A few MMSA-style samples (text, audio, vision, labels, index) for loop-level tests."""

    def __init__(self, n=6):
        torch.manual_seed(0)
        self.audio, self.labels = torch.randn(n, 4, 5), torch.randn(n, 1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"text": text_batch(1)[0], "audio": self.audio[i], "vision": torch.zeros(4, 20), "index": i,
                "labels": {"M": self.labels[i]}}


class _AudioMean(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(5, 1)

    def forward(self, text, audio, vision):
        return self.linear(audio.mean(dim=1))


def test_max_epochs_is_not_a_cap_early_stopping_ends_training(tiny_bert, tmp_path):
    """With lr 0 the validation loss never improves after epoch 1: training stops at epoch
    1 + early_stop, past max_epochs (which only shapes the schedule)."""
    loader = torch.utils.data.DataLoader(_Samples(), batch_size=3)
    args = model_args("mosi", tiny_bert, max_epochs=1, early_stop=2, learning_rate=0.0,
                      model_save_path=tmp_path / "m.pth")
    history = ALMTTrainer(args).do_train(_AudioMean(), {"train": loader, "valid": loader},
                                         return_epoch_results=True)
    assert len(history["valid"]) == 3
    args.update(epoch_cap=2, early_stop=32)
    history = ALMTTrainer(args).do_train(_AudioMean(), {"train": loader, "valid": loader},
                                         return_epoch_results=True)
    assert len(history["valid"]) == 2


def test_short_training_lowers_validation_loss(run_kwargs):
    valid = validation_losses("almt", ALMTTrainer, run_kwargs, dict(ALIGNED, max_epochs=10, epoch_cap=4, batch_size=8,
                                                                      skip_zero_lr_epoch=True))
    assert len(valid) == 4 and min(valid[1:]) < valid[0]
    assert run_kwargs["save_path"].exists()


def test_mmsa_run(tiny_bert, synthetic_root, tmp_path):
    rows = run_through_mmsa("almt", synthetic_root, tmp_path, dataset_params=dict(pretrained=tiny_bert, batch_size=8),
                            common=dict(max_epochs=2, epoch_cap=2, need_data_aligned=True))  # aligned: fast
    assert (tmp_path / "models" / "almt-mosi.pth").exists()
    assert list(rows["Model"]) == ["almt"]
