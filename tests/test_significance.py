"""Paired bootstrap (dar_mmsa.benchmark.significance) on constructed cases; its metrics against MMSA's."""
import numpy as np
import pandas as pd
import pytest
import torch

from dar_mmsa.benchmark import multiple_testing as mt
from dar_mmsa.benchmark import significance as sg
from dar_mmsa.benchmark.aggregate import METRICS


def labels(n, seed=0):
    t = np.round(np.random.default_rng(seed).uniform(-3, 3, n) * 5) / 5
    t[:4] = 0.0  # MOSI has zero labels: Has0 and Non0 differ
    return t.astype(np.float32)


@pytest.mark.parametrize("n", [5, 40, 301])
def test_metrics_equal_mmsa_metricstop(n):
    from MMSA.utils import MetricsTop

    t = labels(n, n)
    p = np.random.default_rng(n + 1).normal(0, 1.5, n).astype(np.float32)
    p[4] = 0.0  # a prediction exactly at 0 (>= 0 for Has0, not > 0 for Non0)
    mmsa = MetricsTop("regression").getMetics("MOSI")(torch.tensor(p).view(-1, 1), torch.tensor(t).view(-1, 1))
    ours = sg.metrics(p, t)
    assert {k: round(ours[k], 4) for k in METRICS} == {k: mmsa[k] for k in METRICS}


def test_weighted_sums_equal_repeated_samples():
    """A draw's multiplicities give the metrics of the data set with those samples repeated."""
    t, p = labels(30), np.random.default_rng(3).normal(0, 1, 30).astype(np.float32)
    w = np.random.default_rng(4).multinomial(30, np.full(30, 1 / 30)).astype(float)
    from_weights = sg.metrics_from_sums(w @ sg.sample_quantities(p, t))
    repeated = sg.metrics(np.repeat(p, w.astype(int)), np.repeat(t, w.astype(int)))
    assert {k: float(v) for k, v in from_weights.items()} == pytest.approx(repeated, abs=1e-12)


def test_known_margin_on_every_sample_has_the_smallest_honest_p_value():
    """Reference off by 0.1 on every sample, the other by 0.3: the MAE lead is exactly 0.2 in every
    draw, so no draw is on the far side of 0 and p = 2 (0 + 1) / (B + 1), never 0."""
    t = labels(60)
    reference = np.broadcast_to(t + 0.1, (2, 3, 60))
    other = np.broadcast_to(t + 0.3, (2, 3, 60))
    out = sg.paired_bootstrap(t, reference, other, n_boot=199, seed=1)
    mae = out[out["metric"] == "MAE"]
    assert len(mae) == 4  # 3 rates + the average
    assert mae["lead"].to_numpy() == pytest.approx(0.2, abs=1e-6)
    assert mae["lead_low"].to_numpy() == pytest.approx(0.2, abs=1e-6)
    assert mae["p_value"].to_numpy() == pytest.approx(2 / 200)
    # Monte-Carlo error of p = 2 q with q = 1/200 estimated from 199 draws: 2 sqrt(q (1 - q) / 199)
    assert mae["p_value_mc_se"].to_numpy() == pytest.approx(2 * np.sqrt(0.005 * 0.995 / 199))
    assert (mae["draws_used"] == 199).all() and mae["defined"].all()


def test_reference_right_where_other_is_wrong_is_significant():
    t = labels(200)
    t[t == 0] = 1.0
    reference = np.where(t > 0, 1.0, -1.0).astype(np.float32)  # always the right sign
    other = reference.copy()
    other[:40] *= -1  # wrong sign on 20 % of the samples
    out = sg.paired_bootstrap(t, reference[None, None], other[None, None], n_boot=500, seed=2)
    acc = out[(out["metric"] == "Non0_acc_2") & (out["rate_index"] == -1)].iloc[0]
    assert acc["lead"] == pytest.approx(0.2)
    assert 0 < acc["lead_low"] < 0.2 < acc["lead_high"] and acc["p_value"] == pytest.approx(2 / 501)


def test_identical_models_contain_zero():
    t = labels(80)
    p = np.random.default_rng(5).normal(0, 1, (3, 2, 80)).astype(np.float32)
    out = sg.paired_bootstrap(t, p, p.copy(), n_boot=200, seed=3)
    assert (out["lead_low"] <= 0).all() and (out["lead_high"] >= 0).all() and (out["p_value"] == 1).all()
    assert (out["lead"] == 0).all()


def test_seeded_and_reproducible():
    t = labels(50)
    rng = np.random.default_rng(6)
    a, b = rng.normal(0, 1, (2, 2, 50)), rng.normal(0, 1, (2, 2, 50))
    first = sg.paired_bootstrap(t, a, b, n_boot=100, seed=7)
    assert first.equals(sg.paired_bootstrap(t, a, b, n_boot=100, seed=7))
    assert not first.equals(sg.paired_bootstrap(t, a, b, n_boot=100, seed=8))


def test_average_is_mean_over_rates_and_seeds():
    t = labels(40)
    rng = np.random.default_rng(9)
    a, b = rng.normal(0, 1, (2, 3, 40)), rng.normal(0, 1, (2, 3, 40))
    out = sg.paired_bootstrap(t, a, b, n_boot=50, seed=0)
    row = out[(out["metric"] == "MAE") & (out["rate_index"] == -1)].iloc[0]
    expected = np.mean([[sg.metrics(a[s, r], t)["MAE"] for r in range(3)] for s in range(2)])
    assert row["reference_value"] == pytest.approx(expected)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        sg.paired_bootstrap(labels(10), np.zeros((1, 2, 10)), np.zeros((1, 3, 10)))


def test_holm_and_benjamini_hochberg_equal_hand_computed_values():
    p = [0.01, 0.04, 0.03, np.nan, 0.005]  # NaN: an undefined cell, not a test (m = 4)
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    np.testing.assert_allclose(mt.holm(p), [0.03, 0.06, 0.06, np.nan, 0.02])
    # BH: 4 p / rank = 0.02, 0.02, 0.04, 0.04 -> running min from the largest
    np.testing.assert_allclose(mt.benjamini_hochberg(p), [0.02, 0.04, 0.04, np.nan, 0.02])
    np.testing.assert_allclose(mt.holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(mt.benjamini_hochberg([0.04, 0.03]), [0.04, 0.04])
    assert np.isnan(mt.holm([np.nan])).all() and mt.holm([]).shape == (0,)


def test_family_adjustment_per_reference_and_primary_family():
    frame = pd.DataFrame({"dataset": ["mosi"] * 4 + ["mosei"], "reference": ["dar"] * 5,
                          "p_value": [0.01, 0.02, 0.2, 0.001, 0.04], "lead": [1.0, -1.0, 1.0, 1.0, 1.0],
                          "primary": [True, True, False, False, True]})
    out = mt.add_adjusted(frame, groups=["dataset", "reference"], primary=frame["primary"].to_numpy())
    # mosi family of 4: Holm 0.001*4, 0.01*3, 0.02*2, 0.2*1 -> 0.004, 0.03, 0.04, 0.2
    np.testing.assert_allclose(out["p_holm"], [0.03, 0.04, 0.2, 0.004, 0.04])
    # primary family of mosi: 0.01, 0.02 -> Holm 0.02, 0.02; the secondary row has none
    np.testing.assert_allclose(out["p_holm_primary"], [0.02, 0.02, np.nan, np.nan, 0.04])
    assert list(out["significant"]) == [True, True, False, False, True]  # only primary rows are claims


def test_constant_prediction_seed_is_left_out_in_the_point_and_in_every_draw():
    """Seed 0 predicts a constant (Corr undefined): the point estimate averages seeds 1 and 2, and
    every draw averages its drawn seeds other than seed 0 -- never a 0 in its place."""
    t = labels(30)
    rng = np.random.default_rng(11)
    reference = rng.normal(0, 1, (3, 1, 30)).astype(np.float32)
    reference[0, 0] = 0.7
    other = rng.normal(0, 1, (3, 1, 30)).astype(np.float32)
    point, draws = sg.bootstrap_curves(t, {"ref": reference, "other": other}, n_boot=40, seed=5)
    per_seed = [sg.metrics(reference[s, 0], t)["Corr"] for s in range(3)]
    assert np.isnan(per_seed[0]) and point["ref"]["Corr"][0] == pytest.approx(np.mean(per_seed[1:]))
    samples, seeds = next(sg.draw_weights(30, 3, 40, 5))
    for b in range(40):
        repeat = samples[b].astype(int)
        values = [sg.metrics(np.repeat(reference[s, 0], repeat), np.repeat(t, repeat))["Corr"] for s in (1, 2)]
        if seeds[b, 1:].sum() == 0:  # only seed 0 drawn: undefined, as the point estimate of seed 0 alone
            assert np.isnan(draws["ref"]["Corr"][b, 0])
        else:
            expected = np.dot(seeds[b, 1:], values) / seeds[b, 1:].sum()
            assert draws["ref"]["Corr"][b, 0] == pytest.approx(expected, abs=1e-12)
    out = sg.paired_bootstrap(t, reference, other, n_boot=40, seed=5)
    corr = out[out["metric"] == "Corr"]
    assert corr["defined"].all() and np.isfinite(corr[["lead_low", "lead_high", "p_value"]].to_numpy()).all()
    assert (corr["draws_used"] == int((seeds[:, 1:].sum(1) > 0).sum())).all()


def test_an_undefined_cell_gets_no_interval_and_no_p_value():
    t = labels(30)
    reference = np.full((2, 2, 30), 0.5, np.float32)  # constant in every seed: Corr undefined
    other = np.random.default_rng(1).normal(0, 1, (2, 2, 30))
    out = sg.paired_bootstrap(t, reference, other, n_boot=100, seed=0)
    corr = out[out["metric"] == "Corr"]
    assert not corr["defined"].any() and corr[["lead_low", "lead_high", "p_value", "p_value_mc_se"]].isna().all().all()
    assert out[out["metric"] == "MAE"]["defined"].all()


def test_corr_of_a_constant_or_offset_prediction_is_stable():
    """Centred moments: a large constant is undefined (not +-1e308), a large offset does not change Corr."""
    t = labels(400)
    assert np.isnan(sg.metrics(np.full(400, 2345.678, np.float32), t)["Corr"])
    p = (np.float32(1e5) + np.random.default_rng(2).normal(0, 0.05, 400)).astype(np.float32)  # one-pass: off by 7e-6
    exact = np.corrcoef(p.astype(np.float64), t.astype(np.float64))[0, 1]
    assert sg.metrics(p, t)["Corr"] == pytest.approx(exact, abs=1e-9)
    w = np.random.default_rng(3).multinomial(400, np.full(400, 1 / 400)).astype(float)
    drawn = float(sg.metrics_from_sums(w @ sg.sample_quantities(p, t))["Corr"])
    assert drawn == pytest.approx(sg.metrics(np.repeat(p, w.astype(int)), np.repeat(t, w.astype(int)))["Corr"],
                                  abs=1e-9)


def test_draws_do_not_depend_on_their_block_size(monkeypatch):
    """The blocks only bound memory: the same draws, so the same results (to BLAS rounding)."""
    t = labels(40)
    rng = np.random.default_rng(12)
    a, b = rng.normal(0, 1, (3, 2, 40)), rng.normal(0, 1, (3, 2, 40))
    weights = [np.concatenate(parts) for parts in zip(*sg.draw_weights(40, 3, 300, 4))]
    whole = sg.paired_bootstrap(t, a, b, n_boot=300, seed=4)
    monkeypatch.setattr(sg, "CHUNK", 7)
    blocks = [np.concatenate(parts) for parts in zip(*sg.draw_weights(40, 3, 300, 4))]
    assert all(np.array_equal(x, y) for x, y in zip(weights, blocks)) and blocks[0].shape == (300, 40)
    pd.testing.assert_frame_equal(sg.paired_bootstrap(t, a, b, n_boot=300, seed=4), whole, rtol=0, atol=1e-12)
