"""Robustness summaries (dar_mmsa.benchmark.robustness) against hand-computed values."""
import math

import pandas as pd
import pytest

from dar_mmsa.benchmark import robustness as rb

RATES = [0.0, 0.1, 0.2, 0.3]
VALUES = [0.80, 0.78, 0.70, 0.60]


def test_auc_and_normalised_auc():
    # trapezoids: 0.1 * (0.80+0.78)/2 + 0.1 * (0.78+0.70)/2 + 0.1 * (0.70+0.60)/2 = 0.079 + 0.074 + 0.065
    assert rb.auc(RATES, VALUES) == pytest.approx(0.218)
    assert rb.normalised_auc(RATES, VALUES) == pytest.approx(0.218 / 0.3)
    assert rb.auc([0.0, 0.5, 1.0], [1.0, 1.0, 0.0]) == pytest.approx(0.75)  # uneven spacing handled
    assert rb.auc(RATES[::-1], VALUES[::-1]) == pytest.approx(0.218)  # order of the points does not matter


def test_effective_robustness():
    baseline = [0.70, 0.65, 0.55, 0.40]
    # beta = baseline + 0.10 = 0.80, 0.75, 0.65, 0.50; f - beta = 0, 0.03, 0.05, 0.10
    assert rb.effective_robustness(VALUES, baseline) == pytest.approx(0.18)
    assert rb.effective_robustness(baseline, baseline) == 0.0
    with pytest.raises(ValueError, match="same rates"):
        rb.effective_robustness(VALUES, baseline[:3])


def test_breakdown_rate():
    # 0.9 * 0.80 = 0.72: between 0.1 (0.78) and 0.2 (0.70): 0.1 + (0.72-0.78)/(0.70-0.78) * 0.1 = 0.175
    assert rb.breakdown_rate(RATES, VALUES, 0.9) == pytest.approx(0.175)
    assert math.isnan(rb.breakdown_rate(RATES, VALUES, 0.5))
    # MAE 1.0 rising: threshold 1.0 / 0.8 = 1.25, between 0.1 (1.2) and 0.2 (1.4): 0.125
    assert rb.breakdown_rate(RATES, [1.0, 1.2, 1.4, 1.5], 0.8, lower_is_better=True) == pytest.approx(0.125)


def test_robustness_table_from_per_condition_rows():
    rows = []
    for model, values in (("dar", VALUES), ("misa", [0.70, 0.65, 0.55, 0.40])):
        for rate, value in zip(RATES, values):
            rows.append({"data": "synthetic", "dataset": "mosi", "model": model, "display_name": model.upper(),
                         "protocol": "intra", "rate": rate, "Non0_acc_2_mean": value})
    table = rb.robustness_table(pd.DataFrame(rows), baseline="misa", metrics=["Non0_acc_2"])
    dar = table[table["model"] == "dar"].iloc[0]
    assert dar["clean"] == 0.80 and dar["auc"] == pytest.approx(0.218)
    assert dar["effective_robustness"] == pytest.approx(0.18) and dar["breakdown_rate"] == pytest.approx(0.175)
    assert table[table["model"] == "misa"].iloc[0]["effective_robustness"] == 0.0
    no_baseline = rb.robustness_table(pd.DataFrame(rows), metrics=["Non0_acc_2"])
    assert no_baseline["effective_robustness"].isna().all()
