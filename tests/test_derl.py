"""DERL-style model (from the abstract): loss functions on hand-made tensors, missing-modality
detection, routing and importance, gradient flow, ablation switches, the training corruption, a
short training run and one MMSA_run."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from dar_mmsa.config import build_config
from dar_mmsa.data.corruption import corrupt_batch
from dar_mmsa.data.modality_drop import drop_modalities
from dar_mmsa.errors import ConfigError, DataError
from dar_mmsa.models import derl_losses as L
from dar_mmsa.models.derl import (DEFAULTS, DERL, EXPERT_NAMES, ConcatFusion, HybridExperts, ImportanceFusion,
                                  MeanFusion, PlainProjections, detect_present, mean_of_other_modalities,
                                  resolve_present)
from dar_mmsa.training.derl import DERLTrainer, training_missingness
from model_inputs import text_batch

SHAPES = {"mosi": ([768, 5, 20], [50, 375, 500]), "mosei": ([768, 74, 35], [50, 500, 500])}
SMALL = dict(hidden_dim=32, encoder_depth=1, encoder_heads=2, encoder_mlp_dim=32, encoder_dim_head=16,
             expert_hidden=64, decoder_hidden=32, fusion_hidden=32, regressor_hidden=32)
SHORT_SEQ = [50, 12, 16]  # unit tests use short audio/vision sequences


def model_args(pretrained, dataset="mosi", small=True, **overrides):
    dims, seq = SHAPES[dataset]
    args = dict(DEFAULTS["commonParams"], **DEFAULTS["datasetParams"][dataset])
    args.update(pretrained=pretrained, dataset_name=dataset, model_name="derl", feature_dims=list(dims),
                seq_lens=list(seq) if not small else list(SHORT_SEQ))
    if small:
        args.update(SMALL)
    args.update(overrides)
    return args


def inputs(batch=4, dataset="mosi", seq=SHORT_SEQ):
    dims = SHAPES[dataset][0]
    return text_batch(batch, real=(14, 9, 20)), torch.randn(batch, seq[1], dims[1]), torch.randn(batch, seq[2], dims[2])


@pytest.fixture
def model(tiny_bert):
    torch.manual_seed(0)
    return DERL(model_args(tiny_bert))


# ----------------------------------------------------------------------------- losses
def test_orthogonality_is_zero_for_orthogonal_features_and_positive_otherwise():
    # batch-centred columns spanned by a = (1, 1, -1, -1) and b = (1, -1, 1, -1): a ⟂ b over the batch
    a, b = torch.tensor([1.0, 1, -1, -1]), torch.tensor([1.0, -1, 1, -1])
    private = torch.outer(a, torch.tensor([1.0, 2.0, 0.0]))
    shared = torch.outer(b, torch.tensor([0.0, 1.0, -3.0]))
    assert L.cross_correlation_penalty(private, shared).item() == pytest.approx(0.0, abs=1e-10)
    assert L.orthogonality_loss([private], [shared]).item() == pytest.approx(0.0, abs=1e-10)
    assert L.cross_correlation_penalty(private, private).item() > 0.5
    assert L.orthogonality_loss([private, private], [shared, shared]).item() > 0.5  # p_1 = p_2: the p-p term
    assert L.orthogonality_loss([private], [private + 0.1 * shared]).item() > 0.5


def test_cross_correlation_penalty_equals_gram_inner_product():
    """‖ãᵀ b̃‖_F² = <ã ãᵀ, b̃ b̃ᵀ>_F, computed the other way round."""
    torch.manual_seed(1)
    a, b = torch.randn(6, 5), torch.randn(6, 7)
    ca, cb = a - a.mean(0), b - b.mean(0)
    ua, ub = ca / ca.norm(dim=1, keepdim=True), cb / cb.norm(dim=1, keepdim=True)
    expected = ((ua @ ua.T) * (ub @ ub.T)).sum() / 6
    assert L.cross_correlation_penalty(a, b).item() == pytest.approx(expected.item(), rel=1e-5)
    assert L.orthogonality_loss(None, [b]).item() == 0.0  # no private space: nothing to keep apart


def test_shared_alignment_counts_only_present_pairs():
    v = torch.tensor([1.0, 0.0])
    shared = torch.stack([torch.stack([v, v, -v]), torch.stack([v, -v, -v])])  # (2, 3, 2)
    everything = torch.ones(2, 3, dtype=torch.bool)
    # sample 0: pairs (0,1)=0, (0,2)=2, (1,2)=2; sample 1: 2, 2, 0
    assert L.shared_alignment_loss(shared, everything).item() == pytest.approx(4.0)
    only_first_two = torch.tensor([[True, True, False], [True, True, False]])
    assert L.shared_alignment_loss(shared, only_first_two).item() == pytest.approx(1.0)


def test_load_balance_is_zero_when_even_and_k_minus_one_when_collapsed():
    assert L.load_balance_loss(torch.full((5, 4), 0.25)).item() == pytest.approx(0.0, abs=1e-7)
    collapsed = torch.zeros(5, 4)
    collapsed[:, 2] = 1
    assert L.load_balance_loss(collapsed).item() == pytest.approx(3.0)


def test_reconstruction_losses_stop_the_gradient_of_their_targets():
    prediction, target = torch.randn(2, 3, 4, 5, requires_grad=True), torch.randn(2, 3, 4, 5, requires_grad=True)
    valid = torch.tensor([[True, False, True], [False, False, False]])
    total = (L.feature_reconstruction_loss(prediction, target)
             + L.cross_modal_reconstruction_loss(prediction, target, valid)
             + L.representation_reconstruction_loss(prediction[:, 0, 0], target[:, 0, 0]))
    total.backward()
    assert target.grad is None and prediction.grad.abs().sum() > 0
    # level 2 averages only over the valid pairs
    manual = ((prediction - target)[valid].pow(2).mean(dim=(1, 2))).mean()
    assert L.cross_modal_reconstruction_loss(prediction, target, valid).item() == pytest.approx(manual.item())


def test_mean_of_other_modalities_uses_present_ones_only():
    shared = torch.arange(3.0).view(1, 3, 1, 1).expand(2, 3, 1, 1)  # values 0, 1, 2
    present = torch.tensor([[True, True, True], [True, False, False]])
    borrowed, valid = mean_of_other_modalities(shared, present)
    assert borrowed[0].flatten().tolist() == [1.5, 1.0, 0.5]
    assert valid.tolist() == [[True, True, True], [False, True, True]]
    assert borrowed[1, 1].item() == 0.0 and borrowed[1, 2].item() == 0.0  # only modality 0 to borrow from


# ----------------------------------------------------------------------------- missing modalities
def test_detect_present_finds_wholly_missing_modalities():
    torch.manual_seed(0)
    text, audio, vision = inputs(4)
    present = torch.tensor([[True, True, True], [False, True, True], [True, False, True], [True, True, False]])
    dropped = drop_modalities(text, audio, vision, present.numpy())
    assert detect_present(*dropped).tolist() == present.tolist()
    # intra-modal corruption at r = 0.5 leaves the modality present; r = 1 removes it wholly
    half = corrupt_batch(text, audio, vision, rate=0.5, seed=1, sample_index=np.arange(4),
                         audio_lengths=[12] * 4, vision_lengths=[16] * 4)
    assert detect_present(*half).all()
    full = corrupt_batch(text, audio, vision, rate=1.0, seed=1, sample_index=np.arange(4),
                         audio_lengths=[12] * 4, vision_lengths=[16] * 4)
    assert not detect_present(*full).any()


def test_resolve_present_validates_and_falls_back():
    nothing = torch.zeros(2, 3, dtype=torch.bool)
    assert resolve_present(nothing).all()  # nothing detected: trust everything
    given = [[True, False, False], [False, False, True]]
    assert resolve_present(nothing, given).tolist() == given
    with pytest.raises(DataError, match="shape"):
        resolve_present(nothing, [[True, True, True]])
    with pytest.raises(DataError, match="no modality"):
        resolve_present(nothing, [[True, False, False], [False, False, False]])


# ----------------------------------------------------------------------------- model
@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_output_shapes_with_default_sizes(dataset, tiny_bert):
    torch.manual_seed(0)
    net = DERL(model_args(tiny_bert, dataset, small=False)).eval()
    with torch.no_grad():
        out = net(*inputs(2, dataset, seq=SHAPES[dataset][1]))
    assert out["M"].shape == (2, 1) and torch.isfinite(out["M"]).all()
    assert out["importance"].shape == (2, len(EXPERT_NAMES)) == (2, 6)
    assert out["fused"].shape == (2, 128)
    assert out["private_routing"].shape == (2, 3, 2) and out["shared_routing"].shape == (2, 3, 4)
    assert "aux_losses" not in out  # inference: no training-only terms


def test_routing_and_importance_rows_sum_to_one(model):
    out = model.eval()(*inputs(5))
    for key in ("private_routing", "shared_routing", "importance"):
        sums = out[key].sum(dim=-1)
        assert torch.allclose(sums, torch.ones_like(sums), atol=1e-6), key
        assert (out[key] >= 0).all()


def test_absent_modality_gets_exactly_zero_importance(model):
    torch.manual_seed(1)
    text, audio, vision = inputs(3)
    present = np.array([[True, False, True], [True, True, False], [False, True, True]])
    model.eval()
    out = model(*drop_modalities(text, audio, vision, present))  # detected from the input
    absent = ~torch.from_numpy(present)
    importance = out["importance"].detach()
    assert (importance[:, :3][absent] == 0).all() and (importance[:, 3:][absent] == 0).all()
    assert (importance[:, :3][~absent] > 0).all() and (importance[:, 3:][~absent] > 0).all()
    assert out["present"].tolist() == present.tolist()

    # an explicit `present` overrides detection: the inputs are complete, yet vision is ignored
    given = torch.tensor([[True, True, False]] * 3)
    first = model(text, audio, vision, present=given)
    assert (first["importance"][:, [2, 5]] == 0).all()
    second = model(text, audio, vision + 5 * torch.randn_like(vision), present=given)
    assert torch.allclose(first["M"], second["M"], atol=1e-6)


def test_training_forward_produces_every_loss_term(model):
    text, audio, vision = inputs(4)
    out = model.train()(text, audio, vision, text_full=text, audio_full=audio, vision_full=vision)
    assert set(out["aux_losses"]) == {"orth", "sim", "balance", "rec_feature", "rec_cross", "rec_representation"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in out["aux_losses"].values())
    no_complete = model(text, audio, vision)["aux_losses"]
    assert set(no_complete) == {"orth", "sim", "balance"}
    with pytest.raises(DataError, match="text_full"):
        model(text, audio, vision, text_full=text)


# ----------------------------------------------------------------------------- gradient flow
def test_orthogonality_loss_reaches_every_expert(model):
    out = model.train()(*inputs(4))
    out["aux_losses"]["orth"].backward()
    experts = model.experts
    for bank in list(experts.private) + [experts.shared]:
        for expert in bank.experts:
            assert expert.ff[0].weight.grad is not None and expert.ff[0].weight.grad.abs().sum() > 0
    for router in experts.private_routers:
        assert router.gate.weight.grad.abs().sum() > 0


def test_reconstruction_targets_get_no_gradient(model):
    text, audio, vision = inputs(4)
    audio_full, vision_full = audio.clone().requires_grad_(), vision.clone().requires_grad_()
    audio_in, vision_in = (0.5 * audio).requires_grad_(), (0.5 * vision).requires_grad_()
    out = model.train()(text, audio_in, vision_in, text_full=text, audio_full=audio_full, vision_full=vision_full)
    aux = out["aux_losses"]
    (aux["rec_feature"] + aux["rec_cross"] + aux["rec_representation"]).backward()
    assert audio_full.grad is None and vision_full.grad is None
    assert audio_in.grad.abs().sum() > 0 and vision_in.grad.abs().sum() > 0


def test_task_loss_reaches_bert_and_projections(model):
    out = model.train()(*inputs(4))
    torch.nn.functional.mse_loss(out["M"], torch.randn(4, 1)).backward()
    bert_grads = [p.grad for p in model.bert.parameters() if p.grad is not None]
    assert bert_grads and sum(g.abs().sum() for g in bert_grads) > 0
    for encoder in model.encoders:
        assert encoder.project.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- switches
def forward_train(net, batch=4):
    torch.manual_seed(3)
    text, audio, vision = inputs(batch)
    return net.train()(text, audio, vision, text_full=text, audio_full=audio, vision_full=vision)


ALL_TERMS = {"orth", "sim", "balance", "rec_feature", "rec_cross", "rec_representation"}


@pytest.mark.parametrize("switch, removed", [
    ("use_orth_loss", {"orth"}),
    ("use_rec_feature", {"rec_feature"}),
    ("use_rec_cross", {"rec_cross"}),
    ("use_rec_representation", {"rec_representation"}),
    ("use_balance_loss", {"balance"}),
])
def test_loss_switch_removes_exactly_its_term(switch, removed, tiny_bert, model):
    torch.manual_seed(0)
    ablated = DERL(model_args(tiny_bert, **{switch: False}))
    assert set(ablated.state_dict()) == set(model.state_dict())  # same architecture
    assert set(forward_train(ablated)["aux_losses"]) == ALL_TERMS - removed


def test_without_experts_uses_plain_projections(tiny_bert):
    torch.manual_seed(0)
    net = DERL(model_args(tiny_bert, use_experts=False))
    assert isinstance(net.experts, PlainProjections)
    out = forward_train(net)
    assert out["private_routing"] is None and out["shared_routing"] is None
    assert set(out["aux_losses"]) == ALL_TERMS - {"balance"}
    assert torch.allclose(out["importance"].sum(-1), torch.ones(4))


def test_without_private_gives_private_experts_no_weight(tiny_bert):
    torch.manual_seed(0)
    net = DERL(model_args(tiny_bert, use_private=False))
    assert isinstance(net.experts, HybridExperts) and net.experts.private is None and net.experts.shared is not None
    out = forward_train(net)
    assert (out["importance"][:, :3] == 0).all() and (out["importance"][:, 3:] > 0).all()
    assert out["private_routing"] is None and out["shared_routing"] is not None
    assert set(out["aux_losses"]) == ALL_TERMS - {"orth"}


def test_without_shared_gives_shared_experts_no_weight(tiny_bert):
    torch.manual_seed(0)
    net = DERL(model_args(tiny_bert, use_shared=False))
    assert net.experts.shared is None and net.experts.private is not None
    out = forward_train(net)
    assert (out["importance"][:, 3:] == 0).all() and (out["importance"][:, :3] > 0).all()
    assert out["shared_routing"] is None
    assert set(out["aux_losses"]) == ALL_TERMS - {"sim", "rec_cross", "balance"}
    assert out["aux_losses"]["orth"].item() > 0  # the private-private terms remain


@pytest.mark.parametrize("fusion, cls", [("concat", ConcatFusion), ("mean", MeanFusion)])
def test_fusion_switch_replaces_importance(fusion, cls, tiny_bert, model):
    torch.manual_seed(0)
    net = DERL(model_args(tiny_bert, fusion=fusion))
    assert isinstance(net.fusion, cls) and isinstance(model.fusion, ImportanceFusion)
    text, audio, vision = inputs(3)
    present = torch.tensor([[True, True, True], [True, False, True], [False, False, True]])
    out = net.eval()(text, audio, vision, present=present)
    expected = torch.cat([present, present], dim=1).float()
    assert torch.allclose(out["importance"], expected / expected.sum(1, keepdim=True))
    if fusion == "mean":
        pooled = net.pooled_experts(net.experts(net.encode(text, audio, vision)))
        assert torch.allclose(out["fused"], (out["importance"][..., None] * pooled).sum(1), atol=1e-6)


def test_bad_switches_fail_with_one_clear_line(tiny_bert):
    with pytest.raises(ConfigError, match="fusion"):
        DERL(model_args(tiny_bert, fusion="attention"))
    with pytest.raises(ConfigError, match="use_private or use_shared"):
        DERL(model_args(tiny_bert, use_private=False, use_shared=False))
    with pytest.raises(ConfigError, match="shared_experts"):
        DERL(model_args(tiny_bert, shared_experts=0))


def test_wrong_input_shapes_fail_with_one_clear_line(model):
    text, audio, vision = inputs(2)
    with pytest.raises(DataError, match="audio"):
        model(text, audio[..., :3], vision)
    with pytest.raises(DataError, match="seq_lens"):
        model(text, audio, torch.randn(2, 40, 20))


# ----------------------------------------------------------------------------- training corruption
def test_training_missingness_halves_and_keeps_one_modality():
    rates, present = training_missingness(101, seed=5)
    assert rates.shape == present.shape == (101, 3)
    assert ((rates == 0).sum(axis=0) == 50).all() and (rates < 1).all()
    assert present.any(axis=1).all()
    again, _ = training_missingness(101, seed=5)
    other, _ = training_missingness(101, seed=6)
    assert np.array_equal(rates, again) and not np.array_equal(rates, other)
    _, many = training_missingness(20000, seed=1, drop_prob=0.3)
    assert abs((~many).mean() - (0.3 - 0.3**3 / 3)) < 0.01  # p = 0.3, all-dropped rows keep one
    with pytest.raises(ConfigError):
        training_missingness(10, seed=1, drop_prob=1.5)


def test_training_corruption_depends_on_sample_index_only():
    trainer = DERLTrainer(dict(dataset_name="mosi", seed=1111, model_name="derl"))
    trainer.train_size, trainer.epoch = 12, 1
    torch.manual_seed(0)
    text, audio, vision = inputs(6)

    def batch(rows, index):
        return dict(text=text[rows], audio=audio[rows], vision=vision[rows], index=torch.tensor(index),
                    labels=torch.zeros(len(rows), 1), audio_lengths=[12] * len(rows), vision_lengths=[16] * len(rows))

    first = trainer.corrupt_for_training(batch([0, 1, 2], [3, 7, 9]))
    second = trainer.corrupt_for_training(batch([5, 2, 4], [11, 9, 0]))  # sample 9 in another batch and place
    for key in ("text", "audio", "vision"):
        assert torch.equal(first[key][2], second[key][1])
        assert torch.equal(first[f"{key}_full"], batch([0, 1, 2], [3, 7, 9])[key])
    rates, present = trainer.epoch_missingness()
    detected = detect_present(first["text"], first["audio"], first["vision"])
    originals = (text, audio, vision)
    index = np.array([3, 7, 9])
    # each modality is left untouched exactly where its rate is 0 and it is not dropped
    untouched = (rates[index] == 0) & present[index]
    equal = np.array([[torch.equal(first[key][row], originals[m][row])
                       for m, key in enumerate(("text", "audio", "vision"))] for row in range(3)])
    assert untouched.any() and equal[untouched].all()
    assert not equal.all()  # and the others were corrupted
    assert not detected[torch.from_numpy(~present[index])].any()  # dropped modalities are wholly missing
    trainer.epoch = 2
    assert not np.array_equal(trainer.epoch_missingness()[0], rates)  # redrawn every epoch


# ----------------------------------------------------------------------------- runs
@pytest.fixture
def derl_config(tmp_path, synthetic_root, tiny_bert):
    config = build_config()
    config["datasetCommonParams"]["dataset_root_dir"] = synthetic_root
    # aligned files (50 frames) keep the runs short; the unaligned lengths are covered by the shape tests
    config["derl"]["commonParams"]["need_data_aligned"] = True
    config["derl"]["datasetParams"]["mosi"].update(SMALL, pretrained=tiny_bert, batch_size=8, max_epochs=1)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_registered_with_display_name_and_every_default_in_the_config():
    from dar_mmsa.registry import get_entry

    entry = get_entry("derl")
    assert entry.display_name == "DERL-style (from the abstract)" and entry.model is DERL
    assert build_config()["derl"] == json.loads(json.dumps(DEFAULTS))


def test_short_training_lowers_validation_loss(run_kwargs, derl_config):
    from dar_mmsa import runner

    overrides = dict(SMALL, max_epochs=2, early_stop=2, batch_size=16, learning_rate=1e-3)
    args = runner.build_args("derl", "mosi", config_file=derl_config, overrides=overrides, **run_kwargs)
    loaders = runner.load_data(args)
    torch.manual_seed(0)
    net = runner.build_model(args)
    trainer = runner.build_trainer(args)
    assert isinstance(trainer, DERLTrainer)
    before = trainer.do_test(net, loaders["valid"], mode="VAL")["Loss"]
    history = trainer.do_train(net, loaders, return_epoch_results=True)
    assert set(trainer.last_terms) == {"task", "total"} | ALL_TERMS
    for split in ("train", "valid"):  # every term logged per epoch, for training and validation
        assert [set(epoch["terms"]) for epoch in history[split]] == [{"task", "total"} | ALL_TERMS] * 2
    assert history["valid"][-1]["terms"]["task"] == pytest.approx(history["valid"][-1]["Loss"], abs=1e-3)
    runner.load_checkpoint(net, args)
    after = trainer.do_test(net, loaders["valid"], mode="VAL")["Loss"]
    assert after == min(v["Loss"] for v in history["valid"])
    assert after < before


def test_mmsa_run_trains_and_tests_derl(derl_config, tmp_path):
    import MMSA

    dirs = dict(model_save_dir=tmp_path / "models", res_save_dir=tmp_path / "res", log_dir=tmp_path / "logs")
    MMSA.MMSA_run("derl", "mosi", config_file=str(derl_config), seeds=[1111], gpu_ids=[], num_workers=0,
                  verbose_level=0, **dirs)
    results = pd.read_csv(tmp_path / "res" / "normal" / "mosi.csv")
    assert results["Model"].tolist() == ["derl"]
    assert (tmp_path / "models" / "derl-mosi.pth").is_file()


# ----------------------------------------------------------------------------- recipe (issue 14)
def test_optimizer_puts_bert_apart_and_exempts_biases_and_norms(model):
    trainer = DERLTrainer(dict(dataset_name="mosi", model_name="derl", learning_rate=1e-3, bert_learning_rate=5e-5,
                               weight_decay=1e-4))
    (optimizer,) = trainer.build_optimizers(model)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert set(groups) == {"bert", "bert_no_decay", "other", "other_no_decay"}
    assert groups["bert"]["lr"] == groups["bert_no_decay"]["lr"] == 5e-5
    assert groups["other"]["lr"] == groups["other_no_decay"]["lr"] == 1e-3
    assert groups["other"]["weight_decay"] == 1e-4 and groups["other_no_decay"]["weight_decay"] == 0.0
    bert_ids = {id(p) for p in model.bert.parameters()}
    assert {id(p) for p in groups["bert"]["params"] + groups["bert_no_decay"]["params"]} == bert_ids
    assert id(model.regressor[0].bias) in {id(p) for p in groups["other_no_decay"]["params"]}
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    # bert_learning_rate null: BERT trains at learning_rate
    same = DERLTrainer(dict(dataset_name="mosi", model_name="derl", learning_rate=1e-3, bert_learning_rate=None))
    assert {g["lr"] for g in same.build_optimizers(model)[0].param_groups} == {1e-3}


def test_schedule_is_the_shared_warmup_cosine_without_a_zero_epoch(model):
    from dar_mmsa.training.schedules import warmup_cosine_factor

    trainer = DERLTrainer(dict(dataset_name="mosi", model_name="derl", max_epochs=20, learning_rate=1e-3))
    optimizers = trainer.build_optimizers(model)
    (scheduler,) = trainer.build_schedulers(optimizers)
    rates = []
    for _ in range(20):
        rates.append(optimizers[0].param_groups[2]["lr"])
        optimizers[0].step()  # no gradients: a no-op, in the order PyTorch expects
        scheduler.step()
    expected = [1e-3 * warmup_cosine_factor(e, 20, skip_zero_lr_epoch=True) for e in range(1, 21)]
    assert rates == pytest.approx(expected) and rates[0] > 0 and rates[1] == pytest.approx(1e-3)
    constant = DERLTrainer(dict(dataset_name="mosi", model_name="derl", lr_schedule="constant"))
    assert constant.build_schedulers(constant.build_optimizers(model)) == []


def test_auxiliary_weights_ramp_in_over_the_warmup_epochs():
    trainer = DERLTrainer(dict(dataset_name="mosi", model_name="derl", orth_weight=0.01, aux_warmup_epochs=3))
    ramp = []
    for epoch in (1, 2, 3, 4, 9):
        trainer.epoch = epoch
        ramp.append(trainer.current_loss_weights()["orth"])
    assert ramp == pytest.approx([0.0025, 0.005, 0.0075, 0.01, 0.01])
    trainer = DERLTrainer(dict(dataset_name="mosi", model_name="derl"))
    trainer.epoch = 1
    assert trainer.current_loss_weights() == trainer.loss_weights  # 0: no ramp
    assert trainer.loss_weights["orth"] == DEFAULTS["datasetParams"]["mosi"]["orth_weight"] == 0.01


@pytest.mark.parametrize("key, value, match", [
    ("lr_schedule", "linear", "lr_schedule"),
    ("orth_weight", -0.1, "orth"),
    ("aux_warmup_epochs", -1, "aux_warmup_epochs"),
])
def test_bad_recipe_keys_fail_with_one_clear_line(key, value, match):
    with pytest.raises(ConfigError, match=match):
        DERLTrainer({"dataset_name": "mosi", "model_name": "derl", key: value})


def test_position_init_and_uniform_initial_importance(tiny_bert):
    torch.manual_seed(0)
    net = DERL(model_args(tiny_bert))
    for encoder in net.encoders:
        assert encoder.tokens.pos_embedding.std().item() == pytest.approx(0.02, rel=0.1)
    out = net.eval()(*inputs(3), present=torch.tensor([[True, True, True], [True, False, True], [False, False, True]]))
    expected = torch.tensor([[1.0] * 6, [1, 0, 1, 1, 0, 1], [0, 0, 1, 0, 0, 1]])
    assert torch.allclose(out["importance"], expected / expected.sum(1, keepdim=True))  # uniform at the start
    torch.manual_seed(0)
    old = DERL(model_args(tiny_bert, position_init_std=1.0, uniform_initial_importance=False))
    assert old.encoders[0].tokens.pos_embedding.std().item() == pytest.approx(1.0, rel=0.1)
    assert not torch.allclose(old.eval()(*inputs(3))["importance"], torch.full((3, 6), 1 / 6))
    with pytest.raises(ConfigError, match="position_init_std"):
        DERL(model_args(tiny_bert, position_init_std=0))
