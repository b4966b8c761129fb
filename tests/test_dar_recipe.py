"""DAR's training recipe: BERT's parameter groups, the warm-up + cosine schedule, q_theta's steps
and warm-up, the per-epoch loss terms, and the ablation switches on loss values."""
import math

import pytest
import torch

from dar_mmsa.errors import ConfigError
from dar_mmsa.models.dar import DAR, DEFAULTS, OLD_RECIPE
from dar_mmsa.training.dar import DARTrainer
from dar_mmsa.training.schedules import warmup_cosine_factor
from test_dar import dar_args, make_batch


@pytest.fixture(scope="module")
def model(tiny_bert):
    torch.manual_seed(0)
    return DAR(dar_args(tiny_bert))


def groups_by_name(optimizer):
    return {g["name"]: g for g in optimizer.param_groups}


def test_bert_has_its_own_groups_and_norms_and_biases_get_no_decay(tiny_bert, model):
    main, variational = DARTrainer(dar_args(tiny_bert)).build_optimizers(model)
    groups = groups_by_name(main)
    assert set(groups) == {"bert", "bert_no_decay", "other", "other_no_decay"}
    assert groups["bert"]["lr"] == groups["bert_no_decay"]["lr"] == 5e-5  # bert_learning_rate
    assert groups["other"]["lr"] == groups["other_no_decay"]["lr"] == 1e-4  # learning_rate
    assert groups["bert"]["weight_decay"] == groups["other"]["weight_decay"] == 1e-4
    assert groups["bert_no_decay"]["weight_decay"] == groups["other_no_decay"]["weight_decay"] == 0.0
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    names = {id(p): n for n, p in model.named_parameters()}
    bert = ids(model.text_encoder.parameters())
    assert ids(groups["bert"]["params"]) | ids(groups["bert_no_decay"]["params"]) == bert
    assert all(names[i].endswith(".bias") or "LayerNorm" in names[i] or "norm" in names[i]
               for i in ids(groups["bert_no_decay"]["params"]))
    assert any("LayerNorm" in names[i] for i in ids(groups["bert_no_decay"]["params"]))
    assert id(model.align["audio"].norm.weight) in ids(groups["other_no_decay"]["params"])
    everything = set().union(*(ids(g["params"]) for g in main.param_groups))
    assert everything == ids(model.main_parameters())  # q_theta is not in the main optimiser
    assert ids(variational.param_groups[0]["params"]) == ids(model.variational_parameters())
    assert variational.param_groups[0]["lr"] == DEFAULTS["datasetParams"]["mosi"]["club_learning_rate"]


def test_old_recipe_keeps_one_lr_and_decays_every_parameter(tiny_bert, model):
    main, variational = DARTrainer(dar_args(tiny_bert, **OLD_RECIPE)).build_optimizers(model)
    groups = groups_by_name(main)
    assert set(groups) == {"bert", "other"}
    assert {g["lr"] for g in main.param_groups} == {1e-4} and {g["weight_decay"] for g in main.param_groups} == {1e-4}
    assert variational.param_groups[0]["lr"] == 1e-4
    assert DARTrainer(dar_args(tiny_bert, **OLD_RECIPE)).build_schedulers([main, variational]) == []


@pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)`")
def test_main_groups_follow_the_warmup_cosine_schedule_and_q_theta_stays_constant(tiny_bert, model):
    trainer = DARTrainer(dar_args(tiny_bert, max_epochs=20))
    optimizers = trainer.build_optimizers(model)
    (scheduler,) = trainer.build_schedulers(optimizers)
    base = {"bert": 5e-5, "bert_no_decay": 5e-5, "other": 1e-4, "other_no_decay": 1e-4}
    seen = []
    for epoch in range(1, 21):
        factor = warmup_cosine_factor(epoch, 20, skip_zero_lr_epoch=True)
        for g in optimizers[0].param_groups:
            assert g["lr"] == pytest.approx(base[g["name"]] * factor, abs=1e-12)
        assert optimizers[1].param_groups[0]["lr"] == DEFAULTS["datasetParams"]["mosi"]["club_learning_rate"]
        seen.append(factor)
        scheduler.step()
    # 20 epochs: warm-up over 2 (0.5, 1.0; no lr-0 epoch), then a cosine from 1 down towards 0
    assert seen[:3] == [0.5, 1.0, 1.0] and seen[3] < 1.0 and seen[-1] < 0.05
    assert all(a >= b for a, b in zip(seen[1:], seen[2:]))


@pytest.mark.parametrize("overrides, message", [
    ({"lr_schedule": "linear"}, "lr_schedule"), ({"club_steps": 0}, "club_steps"),
    ({"club_steps": 1.5}, "club_steps"), ({"club_warmup_steps": -1}, "club_warmup_steps"),
])
def test_bad_recipe_keys_fail_in_one_line(tiny_bert, overrides, message):
    with pytest.raises(ConfigError, match=message):
        DARTrainer(dar_args(tiny_bert, **overrides))


def test_q_theta_takes_club_steps_per_main_step(tiny_bert):
    torch.manual_seed(0)
    net = DAR(dar_args(tiny_bert))
    trainer = DARTrainer(dar_args(tiny_bert, club_steps=3))
    trainer.epoch = 1
    optimizers = trainer.build_optimizers(net)
    trainer.train_step(net, make_batch(), optimizers)
    trainer.train_step(net, make_batch(seed=1), optimizers)
    steps = {float(state["step"]) for state in optimizers[1].state.values()}
    assert steps == {6.0} and trainer.main_steps == 2


def test_l_diff_enters_the_training_loss_after_the_warmup_and_validation_always(tiny_bert, model):
    net = model.eval()
    trainer = DARTrainer(dar_args(tiny_bert, club_warmup_steps=2))
    batch = trainer.corrupt(make_batch(), 0.3, 5)
    weight = 0.1 * 0.7  # alpha * lambda
    with torch.no_grad():
        _, full, terms = trainer.objective(net, batch)  # validation: the total loss
        for main_steps, has_diff in ((0, False), (1, False), (2, True), (9, True)):
            trainer.main_steps = main_steps
            _, loss, _ = trainer.objective(net, batch, training=True)
            expected = full.item() - (0.0 if has_diff else weight * terms["diff"].item())
            assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("switches, removed", [
    ({"use_sim_loss": False}, lambda t: 0.07 * (t["sim_com"] + t["sim_spec"])),
    ({"use_diff_loss": False}, lambda t: 0.07 * t["diff"]),
    ({"use_sim_loss": False, "use_diff_loss": False}, lambda t: 0.07 * (t["sim_com"] + t["sim_spec"] + t["diff"])),
    ({"use_recon_loss": False}, lambda t: 0.1 * t["recon"]),
    ({"use_boot_loss": False}, lambda t: t["boot"]),
])
def test_each_ablation_removes_exactly_its_terms_from_the_loss(tiny_bert, model, switches, removed):
    net = model.eval()
    batch = DARTrainer(dar_args(tiny_bert)).corrupt(make_batch(), 0.3, 5)
    with torch.no_grad():
        _, full, terms = DARTrainer(dar_args(tiny_bert)).objective(net, batch)
        _, ablated, _ = DARTrainer(dar_args(tiny_bert, **switches)).objective(net, batch)
    values = {k: v.item() for k, v in terms.items()}
    assert values["sim"] == pytest.approx(values["sim_com"] + values["sim_spec"], rel=1e-6)
    assert all(math.isfinite(v) and v != 0 for v in values.values())
    assert full.item() - ablated.item() == pytest.approx(removed(values), rel=1e-4, abs=1e-6)


def test_train_and_validation_steps_log_every_term(tiny_bert):
    torch.manual_seed(0)
    net = DAR(dar_args(tiny_bert))
    trainer = DARTrainer(dar_args(tiny_bert))
    trainer.epoch = 1
    optimizers = trainer.build_optimizers(net)
    trainer._terms = {}
    _, loss = trainer.train_step(net, make_batch(), optimizers)
    train = trainer._collect_terms()
    diagnostics = {"com_var", "spec_var", "com_spec_corr", "q_var"}
    assert set(train) == {"task", "boot", "sim_com", "sim_spec", "diff", "re", "recon", "total", "q_nll"} | diagnostics
    assert train["com_var"] > 0 and train["spec_var"] > 0 and -1 <= train["com_spec_corr"] <= 1
    assert math.exp(-1) - 1e-6 <= train["q_var"] <= math.e + 1e-6  # q_theta's Tanh-capped band
    assert train["total"] == pytest.approx(loss, abs=1e-5)
    trainer._terms = {}
    batches = [trainer.corrupt(make_batch(batch=b, seed=b), 0.3, 1) for b in (2, 4)]
    with torch.no_grad():
        losses = [trainer.eval_step(net.eval(), b, "VAL")[1] for b in batches]
    valid = trainer._collect_terms()
    assert set(valid) >= diagnostics
    assert "q_nll" not in valid and valid["total"] == pytest.approx((2 * losses[0] + 4 * losses[1]) / 6, abs=1e-5)
