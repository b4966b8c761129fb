"""Paired bootstrap (dar_mmsa.benchmark.significance) on constructed cases; its metrics against MMSA's."""
import numpy as np
import pytest
import torch

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


def test_known_margin_on_every_sample_is_significant():
    """Reference off by 0.1 on every sample, the other by 0.3: the MAE lead is exactly 0.2 in every draw."""
    t = labels(60)
    reference = np.broadcast_to(t + 0.1, (2, 3, 60))
    other = np.broadcast_to(t + 0.3, (2, 3, 60))
    out = sg.paired_bootstrap(t, reference, other, n_boot=200, seed=1)
    mae = out[out["metric"] == "MAE"]
    assert len(mae) == 4  # 3 rates + the average
    assert mae["lead"].to_numpy() == pytest.approx(0.2, abs=1e-6)
    assert mae["lead_low"].to_numpy() == pytest.approx(0.2, abs=1e-6)
    assert mae["significant"].all() and (mae["lead_low"] > 0).all()


def test_reference_right_where_other_is_wrong_is_significant():
    t = labels(200)
    t[t == 0] = 1.0
    reference = np.where(t > 0, 1.0, -1.0).astype(np.float32)  # always the right sign
    other = reference.copy()
    other[:40] *= -1  # wrong sign on 20 % of the samples
    out = sg.paired_bootstrap(t, reference[None, None], other[None, None], n_boot=500, seed=2)
    acc = out[(out["metric"] == "Non0_acc_2") & (out["rate_index"] == -1)].iloc[0]
    assert acc["lead"] == pytest.approx(0.2)
    assert 0 < acc["lead_low"] < 0.2 < acc["lead_high"] and acc["significant"]


def test_identical_models_contain_zero():
    t = labels(80)
    p = np.random.default_rng(5).normal(0, 1, (3, 2, 80)).astype(np.float32)
    out = sg.paired_bootstrap(t, p, p.copy(), n_boot=200, seed=3)
    assert (out["lead_low"] <= 0).all() and (out["lead_high"] >= 0).all() and not out["significant"].any()
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
