"""LNLN: shapes, parameter counts, the gradient reversal layer, the loss combination, the
completeness target, the training missingness, checkpoint selection, a short training run and one
MMSA_run."""
import math

import numpy as np
import pytest
import torch

from dar_mmsa.errors import ConfigError
from dar_mmsa.models.lnln import DEFAULTS, LNLN
from dar_mmsa.training.base import epoch_seed
from dar_mmsa.training.lnln import (LNLNTrainer, completeness_loss, effectiveness_loss, lnln_loss,
                                    training_missing_rates)
from model_inputs import inputs
from model_inputs import model_args as shared_model_args
from mmsa_run import run_through_mmsa, validation_losses

# spec §4.1, BERT excluded
SPEC_TOTAL = {"mosi": 6_483_012, "mosei": 7_102_404}
SPEC_PARTS = {
    "mosi": {"text": 699_520, "audio": 643_456, "vision": 661_376, "dmml": 1_487_233},
    "mosei": {"text": 699_520, "audio": 668_288, "vision": 663_296, "dmml": 2_079_873},
}
SPEC_SHARED_PARTS = {"proxy": 597_760, "discriminator": 8_386, "completeness": 602_241, "reconstructor": 1_780_992}
# training-run tests use the aligned_50 files (T = 50 instead of 375/500): ~10x less compute on CPU
ALIGNED = {"need_data_aligned": True, "featurePath": "MOSI/Processed/aligned_50.pkl"}
WEIGHTS = {"completeness": 0.9, "adversarial": 0.8, "reconstruction": 0.1, "sentiment": 1.0}


def model_args(dataset, pretrained, **overrides):
    return shared_model_args(DEFAULTS, "lnln", dataset, pretrained, **overrides)


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_forward_shapes_and_parameter_counts(dataset, tiny_bert):
    torch.manual_seed(0)
    model = LNLN(model_args(dataset, tiny_bert)).eval()
    text, audio, vision = inputs(dataset, batch=3)
    with torch.no_grad():
        out = model(text, audio, vision)
        assert out["sentiment_preds"].shape == (3, 1) and out["M"] is out["sentiment_preds"]
        assert out["w"].shape == (3, 1) and ((out["w"] > 0) & (out["w"] < 1)).all()
        assert out["effectiveness_discriminator_out"] is None and out["rec_feats"] is None
        assert out["complete_feats"] is None
        full = model(text, audio, vision, text_full=text, audio_full=audio, vision_full=vision)
    assert full["effectiveness_discriminator_out"].shape == (16 * 3, 2)
    assert full["rec_feats"].shape == full["complete_feats"].shape == (3, 24, 128)
    torch.testing.assert_close(full["sentiment_preds"], out["sentiment_preds"])  # complete inputs: losses only

    assert count(model) - count(model.bert) == SPEC_TOTAL[dataset]
    parts = SPEC_PARTS[dataset]
    for name in ("text", "audio", "vision"):
        assert count(model.extractors[name]) == parts[name]
    assert count(model.dmml) - model.dmml.h_hyper.numel() == parts["dmml"]
    assert count(model.dmc.proxy_generator) - model.dmc.proxy_generator.h_p.numel() == SPEC_SHARED_PARTS["proxy"]
    assert count(model.effectiveness_discriminator) == SPEC_SHARED_PARTS["discriminator"]
    assert count(model.dmc.completeness_check) == SPEC_SHARED_PARTS["completeness"]
    assert count(model.reconstructor) == SPEC_SHARED_PARTS["reconstructor"]
    assert len(model.dmml.fusion.encoder.layers) == {"mosi": 2, "mosei": 4}[dataset]


def test_initialisation_and_positions(tiny_bert):
    model = LNLN(model_args("mosi", tiny_bert))
    assert torch.equal(model.dmc.proxy_generator.h_p.detach(), torch.ones(1, 8, 128))
    assert torch.equal(model.dmml.h_hyper.detach(), torch.ones(1, 8, 128))
    assert tuple(model.dmc.proxy_generator.encoder.pos_embedding.shape) == (1, 32, 128)
    assert tuple(model.dmc.completeness_check.encoder.pos_embedding.shape) == (1, 9, 128)
    assert tuple(model.extractors["audio"].encoder.pos_embedding.shape) == (1, 383, 128)
    assert not model.dmc.completeness_check.encoder.extra_tokens.detach().any()


def test_partial_complete_inputs_are_rejected(tiny_bert):
    model = LNLN(model_args("mosi", tiny_bert))
    text, audio, vision = inputs("mosi")
    with pytest.raises(ValueError, match="text_full"):
        model(text, audio, vision, text_full=text)


def test_loss_combination_by_hand():
    outputs = {
        "w": torch.tensor([[0.5], [1.0]]),
        "effectiveness_discriminator_out": torch.zeros(32, 2),  # uniform logits: CE = ln 2
        "rec_feats": torch.ones(2, 24, 128), "complete_feats": torch.zeros(2, 24, 128),
        "sentiment_preds": torch.tensor([[1.0], [-1.0]]),
    }
    labels = torch.tensor([[3.0], [-3.0]])
    text_rate = torch.tensor([0.2, 0.0])
    total, parts = lnln_loss(outputs, labels, text_rate, WEIGHTS)
    l_cc = ((0.5 - 0.8) ** 2 + 0.0) / 2  # target 1 - r_l
    assert parts["completeness"].item() == pytest.approx(l_cc)
    assert parts["adversarial"].item() == pytest.approx(math.log(2))
    assert parts["reconstruction"].item() == pytest.approx(1.0)
    assert parts["sentiment"].item() == pytest.approx(4.0)
    assert total.item() == pytest.approx(0.9 * l_cc + 0.8 * math.log(2) + 0.1 * 1.0 + 1.0 * 4.0)
    # evaluation outputs (no complete inputs): only L_cc and L_sp remain
    evaluation = dict(outputs, effectiveness_discriminator_out=None, rec_feats=None, complete_feats=None)
    total, _ = lnln_loss(evaluation, labels, text_rate, WEIGHTS)
    assert total.item() == pytest.approx(0.9 * l_cc + 4.0)


def test_effectiveness_targets_first_half_one():
    confident = torch.tensor([[0.0, 20.0]] * 8 + [[20.0, 0.0]] * 8)  # first half class 1, second class 0
    assert effectiveness_loss(confident).item() < 1e-6
    assert effectiveness_loss(confident.flip(0)).item() > 10


def test_completeness_target_is_one_minus_text_rate():
    w = torch.tensor([[0.3], [0.9], [1.0]])
    rate = torch.tensor([0.7, 0.1, 0.0])
    assert completeness_loss(w, rate).item() == pytest.approx(0.0, abs=1e-12)
    assert completeness_loss(w, 1 - rate).item() > 0.1


def test_gradient_reversal_flips_only_the_proxy_path(tiny_bert):
    torch.manual_seed(0)
    model = LNLN(model_args("mosi", tiny_bert)).eval()  # eval: no BERT dropout, so both passes are identical
    torch.manual_seed(1)
    clean = inputs("mosi")
    corrupted = (clean[0], clean[1] * (torch.rand(2, 375, 1) > 0.5), clean[2] * (torch.rand(2, 500, 1) > 0.5))
    labels, text_rate = torch.tensor([[1.0], [-1.0]]), torch.tensor([0.3, 0.0])

    def grads():
        model.zero_grad()
        out = model(*corrupted, text_full=clean[0], audio_full=clean[1], vision_full=clean[2])
        lnln_loss(out, labels, text_rate, WEIGHTS)[0].backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    reversed_ = grads()
    model.dmc.gradient_reversal = torch.nn.Identity()
    plain = grads()
    proxy = [n for n in plain if n.startswith("dmc.proxy_generator.")]
    assert "dmc.proxy_generator.h_p" in proxy and len(proxy) > 10
    for name in proxy:  # only reached through the GRL: exactly the opposite gradient
        assert plain[name].abs().sum() > 0
        torch.testing.assert_close(reversed_[name], -plain[name], rtol=1e-4, atol=1e-7)
    for name in [n for n in plain if n.startswith(("dmc.completeness_check.", "effectiveness_discriminator.",
                                                   "dmml.", "extractors.text."))]:
        torch.testing.assert_close(reversed_[name], plain[name], rtol=1e-4, atol=1e-7)
    # audio/vision extractors get the reversed proxy gradient plus unreversed ones (DMML, L_rec):
    assert not torch.allclose(reversed_["extractors.audio.projection.weight"],
                              plain["extractors.audio.projection.weight"])


@pytest.mark.parametrize("n", [51, 10, 1])
def test_training_rates_complete_exactly_half(n):
    rates = training_missing_rates(n, seed=7)
    assert set(rates) == {"text", "audio", "vision"}
    for r in rates.values():
        assert r.shape == (n,) and (r == 0).sum() == n // 2 and ((r >= 0) & (r < 1)).all()
    if n > 2:  # independent halves per modality
        assert not np.array_equal(rates["text"] == 0, rates["audio"] == 0)
    again = training_missing_rates(n, seed=7)
    assert all(np.array_equal(again[m], rates[m]) for m in rates)
    if n > 2:
        assert not np.array_equal(training_missing_rates(n, seed=8)["text"], rates["text"])


def test_training_corruption_keeps_each_modality_complete_for_half(run_kwargs):
    """Over the whole training split, each modality is complete (rate 0, untouched) for exactly
    floor(N/2) samples, and the batch rates (hence the L_cc target 1 - r_l) are the epoch's rates
    at the dataset index. (A small non-zero rate may drop nothing by chance, so "untouched" alone
    is not counted.)"""
    from dar_mmsa.runner import build_args, load_data

    args = build_args("lnln", "mosi", overrides={"batch_size": 8}, **run_kwargs)
    loaders = load_data(args)
    trainer = LNLNTrainer(args)
    trainer.train_size = n = len(loaders["train"].dataset)
    trainer.epoch = 3
    expected = training_missing_rates(n, epoch_seed(1111, 3))
    complete = {m: [] for m in ("text", "audio", "vision")}
    for batch_data in loaders["train"]:
        batch, rates = trainer.corrupt_for_training(trainer.to_batch(batch_data))
        index = batch["index"].numpy()
        for modality in complete:
            np.testing.assert_array_equal(rates[modality], expected[modality][index])
            same = (batch[modality] == batch[f"{modality}_full"]).flatten(1).all(dim=1).numpy()
            assert same[rates[modality] == 0].all()
            assert not same[rates[modality] > 0.2].any()
            complete[modality] += index[rates[modality] == 0].tolist()
    for modality, samples in complete.items():
        assert len(samples) == len(set(samples)) == n // 2
    assert complete["text"] != complete["audio"]  # chosen independently per modality


def test_trainer_optimizer_schedule_and_switches(tiny_bert):
    args = model_args("mosi", tiny_bert)
    model = LNLN(args)
    trainer = LNLNTrainer(args)
    assert trainer.max_epochs == 200 and trainer.early_stop == 200
    assert trainer.loss_weights == WEIGHTS and trainer.valid_rate() == 0.5
    optimizers = trainer.build_optimizers(model)
    (optimizer,) = optimizers
    assert type(optimizer) is torch.optim.AdamW and len(optimizer.param_groups) == 1
    assert optimizer.param_groups[0]["weight_decay"] == 1e-4
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == {id(p) for p in model.parameters()}
    trainer.build_schedulers(optimizers)
    assert optimizer.param_groups[0]["lr"] == 0.0  # the reference's first epoch
    for bad in ({"checkpoint_selection": "test"}, {"checkpoint_metric": "Loss"}):
        with pytest.raises(ConfigError):
            LNLNTrainer(model_args("mosi", tiny_bert, **bad))


def test_mask_seed_replaces_every_mask_seed(tiny_bert):
    text, audio, vision = inputs("mosi")
    batch = {"text": text, "audio": audio, "vision": vision, "index": torch.tensor([0, 1]),
             "audio_lengths": torch.tensor([375, 200]), "vision_lengths": torch.tensor([500, 300])}
    fixed = LNLNTrainer(model_args("mosi", tiny_bert, mask_seed=1111))
    free = LNLNTrainer(model_args("mosi", tiny_bert))
    a = fixed.corrupt(batch, 0.5, seed=5)["audio"]
    assert torch.equal(a, free.corrupt(batch, 0.5, seed=1111)["audio"])
    assert not torch.equal(free.corrupt(batch, 0.5, seed=5)["audio"], a)


def test_short_training_lowers_validation_loss(run_kwargs):
    valid = validation_losses("lnln", LNLNTrainer, run_kwargs, dict(ALIGNED, max_epochs=4, batch_size=8, skip_zero_lr_epoch=True))
    assert len(valid) == 4 and min(valid[1:]) < valid[0]
    assert run_kwargs["save_path"].exists()


def test_test_metric_selection_reproduces_the_reference_loop(run_kwargs):
    from dar_mmsa.runner import build_args, build_model, build_trainer, load_data

    torch.manual_seed(0)
    overrides = dict(ALIGNED, max_epochs=2, batch_size=16, checkpoint_selection="test_metric", checkpoint_metric="MAE")
    args = build_args("lnln", "mosi", overrides=overrides, **run_kwargs)
    loaders = load_data(args)
    trainer = build_trainer(args)
    history = trainer.do_train(build_model(args), loaders, return_epoch_results=True)
    assert len(history["test"]) == len(history["valid"]) == 2
    maes = [epoch["MAE"] for epoch in history["test"]]
    assert trainer.best_epoch == (2 if maes[1] < maes[0] else 1)
    assert run_kwargs["save_path"].exists()


def test_mmsa_run(tiny_bert, synthetic_root, tmp_path):
    rows = run_through_mmsa("lnln", synthetic_root, tmp_path, dataset_params=dict(pretrained=tiny_bert, batch_size=8),
                            common=dict(max_epochs=1, need_data_aligned=True))  # aligned: fast
    assert (tmp_path / "models" / "lnln-mosi.pth").exists()
    assert list(rows["Model"]) == ["lnln"]
