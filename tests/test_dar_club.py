"""DAR's L_diff measures dependence, not feature scale, and its tightness check can fail.

* Rescaling H~com or H~spec by 0.25 or 4 (the mutual information is unchanged) moves the scale-free
  CLUB estimate of a refitted q_theta by less than 10 %; the raw estimator moves by more than 10x.
* The held-out tightness check (:func:`dar_mmsa.models.dar_club.tightness`: a reference q_theta
  without variance cap, fitted on other features) fails for a q_theta at initialisation, for one
  overfitted to its own samples and for one on its variance floor, and passes for a fitted one
  where the cap does not bind.
* A partly trained DAR: its q_theta against a converged one of the same (capped) family on held-out
  features, and the old one-step-at-1e-4 q_theta recipe lagging far behind.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dar_mmsa.models.dar import DAR, OLD_RECIPE
from dar_mmsa.models.dar_club import converged_club, fit_posterior, rescaled, tightness
from dar_mmsa.training.dar import DARTrainer
from test_dar import dar_args, make_batch

FIT = dict(max_steps=1500, patience=100)


def gaussian_features(n, rho, *, seed, d=4, t=3, scale=0.1, modality="text"):
    """{modality: (H~spec, H~com)} with H~com = rho H~spec + noise per dimension, both of std
    ``scale`` (about DAR's raw feature spread): true CLUB per step d rho^2 / (1 - rho^2)."""
    gen = torch.Generator().manual_seed(seed)
    spec = torch.randn(n, t, d, generator=gen)
    com = rho * spec + math.sqrt(1 - rho ** 2) * torch.randn(n, t, d, generator=gen)
    return {modality: (scale * spec, scale * com)}


@pytest.fixture(scope="module")
def pair():
    return gaussian_features(128, 0.8, seed=0), gaussian_features(128, 0.8, seed=1)


def estimate(pair, club_input, **scales):
    fitting, held_out = pair
    return converged_club(rescaled(fitting, **scales), 8, club_input=club_input,
                          held_out=rescaled(held_out, **scales), **FIT)


@pytest.mark.parametrize("scales", [dict(com=0.25), dict(com=4.0), dict(spec=0.25), dict(spec=4.0)])
def test_rescaling_either_feature_set_leaves_the_scale_free_estimate_within_ten_percent(pair, scales):
    base = estimate(pair, "scale_free")
    assert base > 1.0  # true CLUB here: 4 * 0.64 / 0.36 = 7.1
    assert abs(estimate(pair, "scale_free", **scales) - base) < 0.1 * base


def test_rescaling_h_com_moves_the_raw_estimate_more_than_tenfold(pair):
    base = estimate(pair, "raw")
    small, large = estimate(pair, "raw", com=0.25), estimate(pair, "raw", com=4.0)
    assert large > 10 * base > 100 * small, (small, base, large)


def model_and_features(tiny_bert, rho):
    """A fresh DAR (d = 8, scale-free CLUB, q_theta 16 wide) and two sets of text features of
    dependence ``rho``."""
    torch.manual_seed(0)
    model = DAR(dar_args(tiny_bert, dim=8, club_hidden=16))
    return model, *(gaussian_features(256, rho, seed=s, d=8, t=2) for s in (2, 3))


def fit_text_posterior(model, fitting, held_out=None, **fit):
    """The model's text q_theta (capped, as in training) fitted to convergence on ``fitting``
    (stopped on ``held_out``'s likelihood when given)."""
    pair = lambda features: model.club_pair(*features["text"])  # noqa: E731
    q = fit_posterior(*pair(fitting), 16, held_out=pair(held_out) if held_out else None, **dict(FIT, **fit))
    model.posterior["text"].load_state_dict(q.state_dict())


def test_the_held_out_check_fails_for_q_theta_at_initialisation_and_passes_once_fitted(tiny_bert):
    model, fitting, held_out = model_and_features(tiny_bert, 0.6)
    at_init = tightness(model, fitting, held_out, **FIT)
    assert at_init.reference > 0.4 and not at_init.tight, at_init  # true CLUB per dimension: 0.36 / 0.64 = 0.56
    fit_text_posterior(model, fitting, held_out)  # rho^2 = 0.36 < 1 - e^-1: the variance cap does not bind
    fitted = tightness(model, fitting, held_out, reference=at_init.reference)
    assert fitted.tight, fitted


def test_an_overfitted_q_theta_fails_the_check(tiny_bert):
    model, fitting, held_out = model_and_features(tiny_bert, 0.6)
    fit_text_posterior(model, fitting, max_steps=600)  # full batch, 256 samples, not stopped on held-out data
    check = tightness(model, fitting, held_out, **FIT)
    assert check.ratio > 1.2, check


def test_a_q_theta_on_its_variance_floor_fails_the_check_where_dependence_is_strong(tiny_bert):
    model, fitting, held_out = model_and_features(tiny_bert, 0.95)
    fit_text_posterior(model, fitting, held_out)
    check = tightness(model, fitting, held_out, **FIT)
    assert check.ratio < 0.7, check  # rho^2 = 0.9: a capped q_theta explains at most 1 - e^-1 of it


# ----------------------------------------------------------------------------- a partly trained DAR
STEPS = 40  # main steps: the default warm-up (30) and 10 steps of the encoders minimising L_diff


@pytest.fixture(scope="module")
def narrow_bert(tmp_path_factory):
    from dar_mmsa.text_encoder import write_tiny_bert

    return str(write_tiny_bert(tmp_path_factory.mktemp("bert64") / "bert", num_layers=1, hidden_size=64,
                               num_heads=4, intermediate_size=64))


def probe_features(model, trainer, batches):
    model.eval()
    with torch.no_grad():
        parts = [model.club_features(trainer.forward_with_complete(model, trainer.corrupt(b, 0.3, 7)))
                 for b in batches]
    return {m: tuple(torch.cat([p[m][i] for p in parts]) for i in range(2)) for m in parts[0]}


def trained_check(bert: str, capped: bool, **overrides):
    """The held-out check of a DAR after STEPS main steps on 4 batches of 16: reference fitted on
    those training features, both read on 4 other batches."""
    torch.manual_seed(0)
    args = dar_args(bert, **overrides)
    args["feature_dims"][0] = 64
    model, trainer = DAR(args), DARTrainer(args)
    optimizers = trainer.build_optimizers(model)
    batches = [make_batch(batch=16, seed=s) for s in range(8)]
    for k, batch in enumerate(batches):
        batch["index"] = torch.arange(16) + 16 * k
    for step in range(STEPS):
        trainer.epoch = 1 + step // 4
        trainer.train_step(model.train(), batches[step % 4], optimizers)
    return tightness(model, probe_features(model, trainer, batches[:4]), probe_features(model, trainer, batches[4:]),
                     capped=capped, **FIT)


def test_the_trainers_q_theta_keeps_up_with_a_converged_one_of_its_own_family(narrow_bert):
    check = trained_check(narrow_bert, capped=True)
    assert check.reference > 1.0  # there is dependence to estimate
    assert 0.4 <= check.ratio <= 1.1, check  # measured: 1.41 against 2.49 (0.57)


def test_the_old_recipe_lags_far_behind(narrow_bert):
    check = trained_check(narrow_bert, capped=True, **{k: v for k, v in OLD_RECIPE.items() if k.startswith("club")})
    assert check.ratio < 0.1, check  # measured: -0.0006 against 2.57


def test_club_diagnostics_tool_averages_each_variant_over_its_seeds(tmp_path):
    """tools/club_diagnostics.py: runs grouped by variant, each epoch's terms averaged over seeds,
    a seed that stopped early leaves the later epochs to the others, other models are skipped."""
    def record(folder, seed, club_input, diffs, model="dar"):
        terms = [dict(task=1.0, diff=d, com_var=0.5, spec_var=0.25, com_spec_corr=0.8, q_var=0.4) for d in diffs]
        path = tmp_path / "store" / "runs" / folder / "training.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"model": model, "seed": seed, "display_name": model.upper(),
                                    "args": {"club_input": club_input, "use_diff_loss": True},
                                    "epochs": {"train": [{"terms": t} for t in terms], "valid": []}}))

    record("a", 1111, "scale_free", [1.0, 3.0])
    record("b", 1112, "scale_free", [2.0])  # stopped after epoch 1
    record("c", 1111, "raw", [0.5, 0.7])
    record("d", 1111, "raw", [9.0, 9.0], model="misa")
    tool = Path(__file__).resolve().parent.parent / "tools" / "club_diagnostics.py"
    out = subprocess.run([sys.executable, str(tool), str(tmp_path), "--epochs", "1", "2"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    rows = {tuple(cell.strip() for cell in line.strip("|").split("|")[:3]): line for line in out[2:]}
    assert len(rows) == 4
    assert "| 1.500 |" in rows[("DAR, club_input=scale_free", "1111,1112 (2)", "1")]
    assert "| 3.000 |" in rows[("DAR, club_input=scale_free", "1111,1112 (1)", "2")]
    assert "| 0.700 | 0.500 | 0.250 | 0.800 | 0.400 |" in rows[("DAR, club_input=raw", "1111 (1)", "2")]
