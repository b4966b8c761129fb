"""TETFN (MMSA master port): alignment, shapes, parameter counts, self-supervised labels, loss,
optimiser groups, gradient accumulation, a short training run and one MMSA_run."""
import pytest
import torch
from torch import nn

from dar_mmsa.errors import ConfigError
from dar_mmsa.models.tetfn import DEFAULTS, TETFN, pool_to_length
from dar_mmsa.training.tetfn import (TETFNTrainer, UnimodalLabels, tetfn_parameter_groups, unimodal_loss_weight,
                                     weighted_l1)
from mmsa_run import run_through_mmsa

FEATURE_DIMS = {"mosi": [768, 5, 20], "mosei": [768, 74, 35]}
UNALIGNED_T = {"mosi": (375, 500), "mosei": (500, 500)}
# spec §2.2, instantiated reference (BERT excluded)
SPEC_COUNTS = {"mosi": {"audio": 2_272, "video": 25_216, "total": 1_254_224},
               "mosei": {"audio": 15_424, "video": 10_432, "total": 1_257_360}}


def model_args(dataset, pretrained, **overrides):
    args = dict(DEFAULTS["commonParams"], **DEFAULTS["datasetParams"][dataset])
    args.update(pretrained=pretrained, feature_dims=FEATURE_DIMS[dataset], dataset_name=dataset, model_name="tetfn")
    args.update(overrides)
    return args


def inputs(dataset, batch=2, steps=None):
    _, d_audio, d_vision = FEATURE_DIMS[dataset]
    t_audio, t_vision = steps or (50, 50)
    text = torch.zeros(batch, 3, 50)
    text[:, 0, :9] = torch.randint(110, 500, (batch, 9)).float()
    text[:, 1, :9] = 1
    return text, torch.randn(batch, t_audio, d_audio), torch.randn(batch, t_vision, d_vision)


def count(module):
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- model
def test_pool_to_length_repeats_last_frame_then_averages_windows():
    x = torch.randn(2, 375, 3)
    padded = torch.cat([x, x[:, -1:].repeat(1, 25, 1)], dim=1)  # 375 -> 400 = 50 windows of 8
    expected = torch.stack([padded[:, 8 * i: 8 * (i + 1)].mean(dim=1) for i in range(50)], dim=1)
    torch.testing.assert_close(pool_to_length(x), expected)
    aligned = torch.randn(2, 50, 3)
    assert torch.equal(pool_to_length(aligned), aligned)
    assert pool_to_length(torch.randn(2, 500, 4)).shape == (2, 50, 4)


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_forward_shapes(dataset, tiny_bert):
    torch.manual_seed(0)
    args = model_args(dataset, tiny_bert)
    model = TETFN(args).eval()
    out = model(*inputs(dataset, batch=3))
    for key in "MTAV":
        assert out[key].shape == (3, 1)
    assert out["Feature_f"].shape == (3, args["post_fusion_dim"])
    assert out["Feature_t"].shape == (3, args["post_text_dim"])
    assert out["Feature_a"].shape == (3, args["post_audio_dim"])
    assert out["Feature_v"].shape == (3, args["post_video_dim"])


def test_unaligned_inputs_are_pooled_inside_the_model(tiny_bert):
    torch.manual_seed(0)
    model = TETFN(model_args("mosi", tiny_bert)).eval()
    text, audio, vision = inputs("mosi", steps=UNALIGNED_T["mosi"])
    with torch.no_grad():
        pooled = model(text, pool_to_length(audio), pool_to_length(vision))["M"]
        torch.testing.assert_close(model(text, audio, vision)["M"], pooled)
        lengths = torch.zeros(2)
        torch.testing.assert_close(model(text, (audio, lengths), (vision, lengths))["M"], pooled)


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_parameter_count_matches_reference(dataset, tiny_bert):
    model = TETFN(model_args(dataset, tiny_bert))
    assert count(model.audio_model) == SPEC_COUNTS[dataset]["audio"]
    assert count(model.video_model) == SPEC_COUNTS[dataset]["video"]
    assert count(model) - count(model.text_model) == SPEC_COUNTS[dataset]["total"]


def test_vision_kernel_reference_bug_and_fix(tiny_bert):
    reference = TETFN(model_args("mosi", tiny_bert))
    assert reference.video_model.conv.kernel_size == (1,)  # reads conv1d_kernel_size_a, as MMSA master does
    torch.manual_seed(0)
    fixed = TETFN(model_args("mosi", tiny_bert, fix_vision_kernel=True)).eval()
    assert fixed.video_model.conv.kernel_size == (3,)
    assert fixed(*inputs("mosi"))["M"].shape == (2, 1)  # the shorter (48-step) vision stream still fuses


def test_bad_config_is_a_config_error(tiny_bert):
    with pytest.raises(ConfigError, match="nheads"):
        TETFN(model_args("mosi", tiny_bert, nheads=3))


# ----------------------------------------------------------------------------- labels and loss
def labels_state(size=2, dim=2):
    return UnimodalLabels(size, {m: dim for m in ("fusion", "text", "audio", "vision")}, "cpu", exclude_zero=True,
                          bound=3.0)


def test_label_update_on_a_hand_computed_case():
    state = labels_state()
    state.initialise(torch.tensor([0, 1]), torch.tensor([1.0, 1.0]))
    for m in state.centres:
        state.centres[m] = {"pos": torch.tensor([1.0, 0.0]), "neg": torch.tensor([-1.0, 0.0])}
    # fusion at [0.5, 0]: d_pos 0.5, d_neg 1.5 -> delta_f = 2
    features = {"fusion": torch.tensor([[0.5, 0.0], [0.5, 0.0]]),
                "text": torch.tensor([[0.0, 0.0], [1.0, 0.0]]),     # delta 0 | on the positive centre
                "audio": torch.tensor([[0.5, 0.0], [0.5, 0.0]]),    # delta 2
                "vision": torch.tensor([[-1.0, 0.0], [-1.0, 0.0]])}  # delta -1
    state.update_labels(features, torch.tensor([0, 1]), epoch=2)
    # y~ = 0.5 a y_M + 0.5 (y_M + d_s - d_f), a = d_s / d_f;  y <- y/3 + 2 y~/3 at epoch 2
    torch.testing.assert_close(state.labels["text"], torch.tensor([0.0, 1 / 3 + 2]))  # -0.5 | clamped to H = 3
    torch.testing.assert_close(state.labels["audio"], torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(state.labels["vision"], torch.tensor([-0.5, -0.5]))
    torch.testing.assert_close(state.labels["fusion"], torch.tensor([1.0, 1.0]))  # the truth never moves


def test_centres_use_each_modalitys_labels_and_exclude_zero():
    state = labels_state(size=3)
    state.initialise(torch.arange(3), torch.tensor([1.0, -1.0, 0.0]))
    state.labels["text"] = torch.tensor([1.0, 1.0, 1.0])
    state.update_features({m: torch.tensor([[1.0, 1.0], [3.0, 3.0], [5.0, 5.0]]) for m in state.labels},
                          torch.arange(3))
    state.update_centres()
    torch.testing.assert_close(state.centres["fusion"]["pos"], torch.tensor([1.0, 1.0]))  # label 0 excluded
    torch.testing.assert_close(state.centres["fusion"]["neg"], torch.tensor([3.0, 3.0]))
    torch.testing.assert_close(state.centres["text"]["pos"], torch.tensor([3.0, 3.0]))
    torch.testing.assert_close(state.centres["text"]["neg"], torch.zeros(2))  # no negative sample


def test_loss_is_weighted_l1_over_the_four_heads():
    state = labels_state()
    state.initialise(torch.tensor([0, 1]), torch.tensor([1.0, -2.0]))
    outputs = {"M": torch.tensor([[0.0], [0.0]]), "T": torch.tensor([[2.0], [2.0]]),
               "A": torch.tensor([[0.0], [0.0]]), "V": torch.tensor([[0.0], [0.0]])}
    index = torch.tensor([0, 1])
    assert state.loss(outputs, index).item() == pytest.approx(1.5)  # epoch 1: unimodal weights are 0
    state.labels["text"] = torch.tensor([2.0, -2.0])
    w = torch.tanh(torch.tensor([1.0, 0.0]))
    expected = 1.5 + (w * torch.tensor([0.0, 4.0])).mean().item()
    assert state.loss(outputs, index).item() == pytest.approx(expected)
    weight = unimodal_loss_weight(torch.tensor([2.0]), torch.tensor([1.0]))
    torch.testing.assert_close(weight, torch.tanh(torch.ones(1)))
    assert weighted_l1(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.5])).item() == 1.25


# ----------------------------------------------------------------------------- optimisation
def test_optimizer_has_five_groups_with_their_lr_and_decay(tiny_bert):
    args = model_args("mosi", tiny_bert)
    model = TETFN(args)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = tetfn_parameter_groups(model, args)
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [
        (3e-05, 0.001), (3e-05, 0.0), (0.0005, 0.01), (0.0003, 0.0), (0.0003, 0.01)]
    bert_decay, bert_plain, audio, video, other = ({id(p) for p in g["params"]} for g in groups)
    assert bert_decay | bert_plain == {id(p) for p in model.text_model.parameters()}
    assert all("bias" in names[i] or "LayerNorm" in names[i] for i in bert_plain)
    assert not any("bias" in names[i] or "LayerNorm" in names[i] for i in bert_decay)
    assert audio == {id(p) for p in model.audio_model.parameters()}
    assert video == {id(p) for p in model.video_model.parameters()}
    assert id(model.proj_l.weight) in other and id(model.fusion_head.score[-1].bias) in other
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))  # a partition

    wrapper = nn.Module()  # like MMSA's AMIO, which holds the model as .Model
    wrapper.Model = model
    (optimizer,) = TETFNTrainer(args).build_optimizers(wrapper)
    assert type(optimizer) is torch.optim.Adam and len(optimizer.param_groups) == 5


class StubTETFN(nn.Module):
    """TETFN's output contract on a single Linear, to count optimiser steps cheaply."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 64 + 32 + 32 + 16 + 4)

    def forward(self, text, audio, vision):
        out = self.linear(audio.mean(dim=(1, 2))[:, None])
        m, t, a, v, f_f, f_t, f_a, f_v = out.split([1, 1, 1, 1, 64, 32, 32, 16], dim=1)
        return {"M": m, "T": t, "A": a, "V": v, "Feature_f": f_f, "Feature_t": f_t, "Feature_a": f_a,
                "Feature_v": f_v}


class CountingSGD(torch.optim.SGD):
    def __init__(self, params):
        super().__init__(params, lr=0.01)
        self.steps = self.zero_grads = 0

    def step(self, closure=None):
        self.steps += 1
        return super().step(closure)

    def zero_grad(self, set_to_none=True):
        self.zero_grads += 1
        return super().zero_grad(set_to_none)


@pytest.mark.parametrize("flush, steps", [(False, 5), (True, 6)])
def test_gradient_accumulation_steps(flush, steps):
    torch.manual_seed(0)
    args = dict(model_args("mosi", "unused", flush_trailing_gradients=flush), train_samples=21 * 2, device="cpu")
    trainer, model = TETFNTrainer(args), StubTETFN()
    optimizer = CountingSGD(model.parameters())
    state = UnimodalLabels(42, {"fusion": 64, "text": 32, "audio": 32, "vision": 16}, "cpu")
    state.initialise(torch.arange(42), torch.randn(42))
    trainer.unimodal_labels = state
    trainer.batches_per_epoch = 21
    for epoch in (1, 2):
        trainer.epoch = epoch
        for i in range(21):
            batch = {"text": torch.zeros(2, 3, 50), "audio": torch.randn(2, 50, 5), "vision": torch.randn(2, 50, 20),
                     "labels": torch.randn(2, 1), "index": torch.tensor([2 * i, 2 * i + 1])}
            trainer.train_step(model, batch, [optimizer])
        assert optimizer.steps == steps * epoch  # 21 batches, a step every 4 (+1 for the trailing 1 when flushed)
        assert optimizer.zero_grads == 6 * epoch  # epoch 2 starts from zero: trailing gradients never leak


def test_sample_index_outside_train_samples_is_a_config_error():
    state = labels_state(size=2)
    with pytest.raises(ConfigError, match="train_samples"):
        state.initialise(torch.tensor([0, 5]), torch.zeros(2))


# ----------------------------------------------------------------------------- integration
def test_short_training_lowers_validation_loss(tiny_bert, small_mosi_root, tmp_path):
    from dar_mmsa.runner import build_args, build_model, build_trainer, load_data

    torch.manual_seed(0)
    # batch 2 gives 8 batches, so 2 optimiser steps per epoch with the reference accumulation of 4
    lr = {f"learning_rate_{part}": 1e-3 for part in ("audio", "video", "other")}
    args = build_args("tetfn", "mosi", data_root=small_mosi_root, pretrained=tiny_bert, device="cpu", seed=1111,
                      save_path=tmp_path / "tetfn.pth", overrides=dict(lr, max_epochs=2, batch_size=2))
    assert str(args["featurePath"]).endswith("aligned_50.pkl") and "unaligned" not in str(args["featurePath"])
    loaders = load_data(args)
    assert args["train_samples"] == len(loaders["train"].dataset) == 16
    model, trainer = build_model(args), build_trainer(args)
    assert isinstance(trainer, TETFNTrainer)
    history = trainer.do_train(model, loaders, return_epoch_results=True)
    valid = [epoch["Loss"] for epoch in history["valid"]]
    assert len(valid) == 2 and valid[1] < valid[0], valid
    labels = trainer.unimodal_labels.labels
    assert not torch.equal(labels["text"], labels["fusion"])  # epoch 2 generated unimodal labels


def test_mmsa_run(tiny_bert, small_mosi_root, tmp_path):
    rows = run_through_mmsa("tetfn", small_mosi_root, tmp_path, dataset_params=dict(pretrained=tiny_bert, batch_size=8),
                            common=dict(max_epochs=1))
    assert (tmp_path / "models" / "tetfn-mosi.pth").exists()
    assert list(rows["Model"]) == ["tetfn"]
