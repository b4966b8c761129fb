"""DAR: shapes, the inference path, gradient routing of every loss term, the trainer's steps and
switches, and one ``MMSA_run`` on CPU."""
import copy
import json

import numpy as np
import pytest
import torch

from dar_mmsa.errors import ConfigError
from dar_mmsa.models.dar import DAR, DEFAULTS, MODALITIES
from dar_mmsa.training.dar import DARTrainer

SMALL = dict(dim=16, aligned_len=8, encoder_heads=2, encoder_dim_head=8, encoder_mlp_dim=32,
             fusion_layers=1, fusion_heads=2, club_hidden=8)
SHAPES = {"mosi": ((375, 5), (500, 20)), "mosei": ((500, 74), (500, 35))}


def dar_args(tiny_bert, dataset="mosi", **overrides):
    (t_a, d_a), (t_v, d_v) = SHAPES[dataset]
    args = dict(DEFAULTS["commonParams"], **copy.deepcopy(DEFAULTS["datasetParams"][dataset]))
    args.update(SMALL, pretrained=tiny_bert, feature_dims=[768, d_a, d_v], seq_lens=[50, t_a, t_v],
                dataset_name=dataset, model_name="dar", seed=1111, device="cpu")
    args.update(overrides)
    return args


def make_batch(dataset="mosi", batch=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    (t_a, d_a), (t_v, d_v) = SHAPES[dataset]
    lengths = torch.tensor([12, 20, 30, 49][:batch] + [25] * max(0, batch - 4))
    text = torch.zeros(batch, 3, 50)
    for i, n in enumerate(lengths.tolist()):
        text[i, 0, :n] = torch.randint(104, 1000, (n,), generator=gen).float()
        text[i, 0, 0], text[i, 0, n - 1] = 101, 102
        text[i, 1, :n] = 1
    audio_len, vision_len = lengths * t_a // 50, lengths * t_v // 50
    audio = torch.randn(batch, t_a, d_a, generator=gen) * (torch.arange(t_a)[None, :, None] < audio_len[:, None, None])
    vision = torch.randn(batch, t_v, d_v, generator=gen)
    vision = vision * (torch.arange(t_v)[None, :, None] < vision_len[:, None, None])
    return dict(text=text, audio=audio, vision=vision, labels=torch.randn(batch, 1, generator=gen),
                index=torch.arange(batch), audio_lengths=audio_len, vision_lengths=vision_len)


def with_complete(batch):
    return dict(text_full=batch["text"], audio_full=batch["audio"], vision_full=batch["vision"])


@pytest.fixture(scope="module")
def mosi_model(tiny_bert):
    torch.manual_seed(0)
    return DAR(dar_args(tiny_bert))


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_forward_shapes(tiny_bert, dataset):
    torch.manual_seed(0)
    model = DAR(dar_args(tiny_bert, dataset))
    batch = make_batch(dataset, batch=3)
    out = model(batch["text"], batch["audio"], batch["vision"], **with_complete(batch))
    assert out["M"].shape == (3, 1) and out["boot"].shape == (3, 1)
    for m in MODALITIES:
        for seq in (out["corrupted"]["com"][m], out["complete"]["spec"][m], out["com_hat"][m],
                    out["restored"][m], out["aligned_hat"][m]):
            assert seq.shape == (3, 8, 16)
        assert torch.allclose(out["weights"][m].sum(-1), torch.ones(3))
    model.eval()
    with torch.no_grad():
        assert set(model(batch["text"], batch["audio"], batch["vision"])) == {"M"}


def test_text_pooling_weights_cover_real_tokens_only(mosi_model):
    batch = make_batch(batch=2)  # text lengths 12 and 20 of 50, pooled to 8 steps
    weights = mosi_model.pooling_weights(batch["text"], 8)["text"]
    assert (weights[0, 2:] == 0).all() and (weights[0, :2] > 0).all()
    assert (weights[1, 4:] == 0).all()


def test_inference_never_touches_the_complete_branch_nor_the_bootstrap_head(mosi_model):
    model = mosi_model.eval()
    calls = []
    hooks = [module.register_forward_hook(lambda *_, name=name: calls.append(name))
             for name, module in (("boot", model.boot_head), ("text_encoder", model.text_encoder),
                                  ("restore", model.restoration_decoder["text"]),
                                  ("rec", model.reconstruction_decoder["audio"]))]
    batch = make_batch()
    try:
        with torch.no_grad():
            plain = model(batch["text"], batch["audio"], batch["vision"])["M"]
            assert calls == ["text_encoder"]  # BERT once, for the corrupted text only
            other = make_batch(seed=7)
            given = model(batch["text"], batch["audio"], batch["vision"], **with_complete(other))["M"]
    finally:
        for hook in hooks:
            hook.remove()
    assert torch.equal(plain, given)  # whatever is passed as complete input, y^ is the same


def test_forward_rejects_a_partial_complete_input(mosi_model):
    batch = make_batch()
    with pytest.raises(ValueError, match="text_full"):
        mosi_model(batch["text"], batch["audio"], batch["vision"], text_full=batch["text"])


# ----------------------------------------------------------------------------- gradient routing
GROUPS = ("text_encoder", "align", "common_encoder", "independent_encoder", "restoration_decoder", "posterior",
          "common_projection", "common_reconstructor", "independent_reconstructor", "reconstruction_decoder",
          "common_gate", "independent_gate", "common_fusion", "cross_fusion", "head", "boot_head")
ENCODERS = {"text_encoder", "align", "common_encoder", "independent_encoder"}
RECONSTRUCT = {"common_projection", "common_reconstructor", "independent_reconstructor"}
REACHES = {
    "task": ENCODERS | RECONSTRUCT | {"common_gate", "independent_gate", "common_fusion", "cross_fusion", "head"},
    "boot": {"text_encoder", "align", "common_encoder", "boot_head"},
    "sim": ENCODERS,
    "diff": ENCODERS,
    "re": ENCODERS | {"restoration_decoder"},
    "recon": ENCODERS | RECONSTRUCT | {"reconstruction_decoder"},
}


def reached_groups(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {g for g in GROUPS if any(p.grad is not None and p.grad.abs().sum() > 0
                                     for p in getattr(model, g).parameters())}


def test_every_loss_term_reaches_exactly_its_parameters(mosi_model):
    model = mosi_model.train()
    torch.manual_seed(0)
    batch = make_batch()
    out = model(batch["text"], batch["audio"], batch["vision"], **with_complete(make_batch(seed=3)))
    terms = model.loss_terms(out, batch["labels"])
    for name, expected in REACHES.items():
        assert reached_groups(model, terms[name]) == expected, name
    # q_theta's own step: only q_theta, never the encoders
    assert reached_groups(model, model.variational_loss(out)) == {"posterior"}
    model.zero_grad(set_to_none=True)


def test_detached_recon_targets_stop_gradient_into_the_complete_branch(tiny_bert):
    torch.manual_seed(0)
    batch = make_batch()
    for detach, expect_gradient in ((False, True), (True, False)):
        model = DAR(dar_args(tiny_bert, detach_recon_targets=detach))
        out = model(batch["text"], batch["audio"], batch["vision"], **with_complete(batch))
        recon = model.loss_terms(out, batch["labels"])["recon"]
        target = out["complete"]["com"]["vision"]
        (grad,) = torch.autograd.grad(recon, [target], allow_unused=True)
        assert (grad is not None) == expect_gradient


# ----------------------------------------------------------------------------- trainer
def test_trainer_corrupts_at_k_with_masks_redrawn_each_epoch(tiny_bert, mosi_model):
    trainer = DARTrainer(dar_args(tiny_bert))
    seen = []
    hook = mosi_model.register_forward_pre_hook(lambda _, args, kwargs: seen.append((args, kwargs)),
                                                with_kwargs=True)
    batch = make_batch()
    try:
        for epoch in (1, 2):
            trainer.epoch = epoch
            trainer.train_step(mosi_model, batch, trainer.build_optimizers(mosi_model))
    finally:
        hook.remove()
    (args1, kw1), (args2, kw2) = seen
    assert torch.equal(kw1["audio_full"], batch["audio"]) and torch.equal(kw1["text_full"], batch["text"])
    real = torch.arange(375)[None, :] < batch["audio_lengths"][:, None]
    dropped = (args1[1].abs().sum(-1) == 0) & real
    assert 0.15 < dropped.sum() / real.sum() < 0.45  # k = 0.3 on MOSI
    assert not torch.equal(args1[1], args2[1])  # new masks in epoch 2


def snapshot(params):
    return [p.detach().clone() for p in params]


def moved(before, params):
    return any(not torch.equal(b, p.detach()) for b, p in zip(before, params))


@pytest.mark.parametrize("use_diff", [True, False])
def test_train_step_updates_main_parameters_and_q_theta_only_by_its_own_step(tiny_bert, use_diff):
    torch.manual_seed(0)
    model = DAR(dar_args(tiny_bert, use_diff_loss=use_diff))
    trainer = DARTrainer(dar_args(tiny_bert, use_diff_loss=use_diff))
    trainer.epoch = 1
    main_before, q_before = snapshot(model.main_parameters()), snapshot(model.variational_parameters())
    pred, loss = trainer.train_step(model, make_batch(), trainer.build_optimizers(model))
    assert pred.shape == (4, 1) and np.isfinite(loss)
    assert moved(main_before, model.main_parameters())
    assert moved(q_before, model.variational_parameters()) == use_diff


def test_the_main_step_sends_no_gradient_to_q_theta(tiny_bert, mosi_model):
    trainer = DARTrainer(dar_args(tiny_bert))
    trainer.epoch = 1
    mosi_model.zero_grad(set_to_none=True)
    _, loss, _ = trainer.objective(mosi_model.train(), trainer.corrupt(make_batch(), 0.3, 5))
    loss.backward()
    assert all(p.grad is None for p in mosi_model.variational_parameters())
    assert all(p.requires_grad for p in mosi_model.variational_parameters())
    mosi_model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("switch, term, weight", [
    ("use_sim_loss", "sim", 0.1 * 0.7), ("use_diff_loss", "diff", 0.1 * 0.7),
    ("use_recon_loss", "recon", 0.1), ("use_boot_loss", "boot", 1.0),
])
def test_each_ablation_switch_removes_exactly_its_term_from_the_trainer_loss(tiny_bert, mosi_model, switch,
                                                                           term, weight):
    model = mosi_model.eval()  # no dropout: both objectives see the same forward
    batch = DARTrainer(dar_args(tiny_bert)).corrupt(make_batch(), 0.3, 5)
    with torch.no_grad():
        out, full, _ = DARTrainer(dar_args(tiny_bert)).objective(model, batch)
        _, ablated, _ = DARTrainer(dar_args(tiny_bert, **{switch: False})).objective(model, batch)
        value = model.loss_terms(out, batch["labels"])[term]
    assert (full - ablated).item() == pytest.approx(weight * value.item(), rel=1e-4, abs=1e-6)


def test_validation_uses_k_and_the_total_loss_test_uses_l1(tiny_bert, mosi_model):
    trainer = DARTrainer(dar_args(tiny_bert))
    assert trainer.valid_rate() == 0.3
    assert DARTrainer(dar_args(tiny_bert, "mosei")).valid_rate() == 0.4
    assert DARTrainer(dar_args(tiny_bert, valid_missing_rate=0.0)).valid_rate() == 0.0
    model = mosi_model.eval()
    batch = trainer.corrupt(make_batch(), 0.3, 1111)
    with torch.no_grad():
        pred_val, val_loss = trainer.eval_step(model, batch, "VAL")
        pred_test, test_loss = trainer.eval_step(model, batch, "TEST")
        terms = model.loss_terms(trainer.forward_with_complete(model, batch), batch["labels"])
    assert torch.equal(pred_val, pred_test)
    assert test_loss == pytest.approx(terms["task"].item(), rel=1e-5)
    assert val_loss == pytest.approx(terms["task"].item() + terms["boot"].item()
                                     + 0.1 * (0.7 * (terms["sim"] + terms["diff"]).item() + terms["re"].item())
                                     + 0.1 * terms["recon"].item(), rel=1e-4)


@pytest.mark.parametrize("overrides, message", [
    ({"train_missing_rate": 1.5}, "train_missing_rate"),
    ({"train_missing_rate": None}, "train_missing_rate"),
    ({"valid_missing_rate": -0.1}, "valid_missing_rate"),
])
def test_bad_missing_rates_fail_in_one_line(tiny_bert, overrides, message):
    with pytest.raises(ConfigError, match=message):
        DARTrainer(dar_args(tiny_bert, **overrides))


@pytest.mark.parametrize("overrides, message", [
    ({"tau": 0}, "tau"), ({"fusion_heads": 3}, "fusion_heads"), ({"dim": None}, "'dim'"),
])
def test_bad_model_config_fails_in_one_line(tiny_bert, overrides, message):
    with pytest.raises(ConfigError, match=message):
        DAR(dar_args(tiny_bert, **overrides))


@pytest.mark.parametrize("overrides, message", [({"club_input": "whitened"}, "club_input"),
                                               ({"club_reduction": "max"}, "club_reduction")])
def test_bad_club_options_fail_in_one_line(tiny_bert, overrides, message):
    with pytest.raises(ConfigError, match=message):
        DAR(dar_args(tiny_bert, **overrides))


def test_a_config_without_the_club_keys_runs_the_raw_estimator(tiny_bert):
    args = dar_args(tiny_bert)
    del args["club_input"], args["club_reduction"]
    model = DAR(args)
    assert (model.club_input, model.club_reduction) == ("raw", "sum")


@pytest.mark.parametrize("club_input, invariant", [("scale_free", True), ("raw", False)])
def test_l_diff_ignores_how_the_encoders_scale_their_features_only_when_scale_free(tiny_bert, club_input, invariant):
    torch.manual_seed(0)
    model = DAR(dar_args(tiny_bert, club_input=club_input)).eval()
    batch = make_batch()
    with torch.no_grad():
        corrupted = model(batch["text"], batch["audio"], batch["vision"], **with_complete(batch))["corrupted"]
        com, spec = corrupted["com"], corrupted["spec"]
        diff, stats = model.club_terms(com, spec)
        scaled, scaled_stats = model.club_terms({m: 4 * x for m, x in com.items()}, {m: x / 4 for m, x in spec.items()})
    assert (scaled.item() == pytest.approx(diff.item(), rel=1e-3, abs=1e-4)) == invariant
    # the diagnostics are of the raw features
    assert scaled_stats["com_var"].item() == pytest.approx(16 * stats["com_var"].item(), rel=1e-4)
    assert scaled_stats["spec_var"].item() == pytest.approx(stats["spec_var"].item() / 16, rel=1e-4)
    assert scaled_stats["com_spec_corr"].item() == pytest.approx(stats["com_spec_corr"].item(), abs=1e-5)


def test_defaults_hold_the_paper_hyperparameters():
    assert DEFAULTS["commonParams"]["need_data_aligned"] is False
    for dataset, k in (("mosi", 0.3), ("mosei", 0.4)):
        params = DEFAULTS["datasetParams"][dataset]
        assert params["train_missing_rate"] == k
        assert (params["lambda_decouple"], params["alpha"], params["beta"]) == (0.7, 0.1, 0.1)
        assert params["dim"] == 128 and params["aligned_len"] == 50
        assert all(params[s] for s in ("use_sim_loss", "use_diff_loss", "use_recon_loss", "use_boot_loss"))
        assert params["detach_recon_targets"] is False
        assert (params["club_input"], params["club_reduction"]) == ("scale_free", "mean")


# ----------------------------------------------------------------------------- MMSA_run
def test_mmsa_run_on_cpu(tiny_bert, synthetic_root, tmp_path):
    import MMSA

    import dar_mmsa  # noqa: F401  -- registers dar with MMSA
    from dar_mmsa.config import build_config

    config = build_config()
    config["datasetCommonParams"]["dataset_root_dir"] = synthetic_root
    config["dar"]["commonParams"]["max_epochs"] = 1
    config["dar"]["datasetParams"]["mosi"].update(SMALL, batch_size=8, pretrained=tiny_bert)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    MMSA.MMSA_run("dar", "mosi", config_file=str(config_file), gpu_ids=[], seeds=[1111], num_workers=0,
                  model_save_dir=str(tmp_path / "models"), res_save_dir=str(tmp_path / "results"),
                  log_dir=str(tmp_path / "logs"), verbose_level=0)
    assert (tmp_path / "models" / "dar-mosi.pth").is_file()
    rows = (tmp_path / "results" / "normal" / "mosi.csv").read_text().splitlines()
    assert rows[1].startswith("dar,") and "MAE" in rows[0]
