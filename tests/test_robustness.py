"""Robustness summaries (dar_mmsa.benchmark.robustness) against hand-computed values."""
import math

import numpy as np
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
    assert dar["clean"] == 0.80 and dar["sign"] == 1 and dar["auc_oriented"] == pytest.approx(0.218)
    assert dar["effective_robustness_sum_oriented"] == pytest.approx(0.18)
    assert dar["effective_robustness_mean_oriented"] == pytest.approx(0.18 / 4)  # 4 rates: the mean, not the sum
    assert dar["breakdown_rate"] == pytest.approx(0.175)
    # MultiBench's max-min over the methods: DAR's area 0.218 is the largest, MISA's the smallest
    assert dar["relative_robustness_minmax"] == 1.0
    misa = table[table["model"] == "misa"].iloc[0]
    assert misa["effective_robustness_sum_oriented"] == 0.0 and misa["relative_robustness_minmax"] == 0.0
    assert "relative_robustness" not in table and "auc" not in table  # no duplicate of the area, no unoriented one
    no_baseline = rb.robustness_table(pd.DataFrame(rows), metrics=["Non0_acc_2"])
    assert no_baseline["effective_robustness_mean_oriented"].isna().all()


def _mae_rows():
    """Both start at MAE 1.0; "slow" rises to 1.2, "fast" to 1.6 (lower is better)."""
    rows = []
    for model, values in (("slow", [1.0, 1.1, 1.2]), ("fast", [1.0, 1.3, 1.6])):
        for rate, value in zip([0.0, 0.3, 0.6], values):
            rows.append({"data": "real", "dataset": "mosi", "model": model, "display_name": model, "protocol": "intra",
                         "rate": rate, "MAE_mean": value})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("baseline", ["slow", "fast"])
def test_mae_robustness_columns_rank_the_slower_degrading_model_higher(baseline):
    table = rb.robustness_table(_mae_rows(), baseline=baseline, metrics=["MAE"]).set_index("model")
    assert table.loc["slow", "sign"] == -1
    for column in ("auc_oriented", "normalised_auc_oriented", "relative_robustness_minmax",
                   "effective_robustness_mean_oriented", "effective_robustness_sum_oriented"):
        assert table.loc["slow", column] > table.loc["fast", column], column
    # hand values: areas under -MAE: -(0.3 (1.0+1.1)/2 + 0.3 (1.1+1.2)/2) = -0.66 and -(0.345 + 0.435) = -0.78
    assert table.loc["slow", "auc_oriented"] == pytest.approx(-0.66)
    assert table.loc["fast", "auc_oriented"] == pytest.approx(-0.78)
    # effective robustness of slow against fast: -(0.1 - 0.3) - (0.2 - 0.6) = 0.6 over 3 rates
    er = table.loc["slow", "effective_robustness_sum_oriented"] - table.loc["fast", "effective_robustness_sum_oriented"]
    assert er == pytest.approx(0.6)
    assert table.loc["slow", "effective_robustness_mean_oriented"] - table.loc[
        "fast", "effective_robustness_mean_oriented"] == pytest.approx(0.2)
    # breakdown (MAE above 1.0 / 0.9 = 1.111): slow at 0.3 + 0.3 (0.0111 / 0.1) = 0.333, fast at 0.3 (0.111 / 0.3)
    assert table.loc["slow", "breakdown_rate"] == pytest.approx(1 / 3)
    assert table.loc["fast", "breakdown_rate"] == pytest.approx(1 / 9)


def test_robustness_leads_equal_the_table_differences_and_are_oriented():
    table = rb.robustness_table(_mae_rows(), baseline="fast", metrics=["MAE"]).set_index("model")
    rates = [0.0, 0.3, 0.6]
    slow, fast = np.array([1.0, 1.1, 1.2]), np.array([1.0, 1.3, 1.6])
    draws = 5  # every draw equal to the point curves: a degenerate interval at the lead
    rows = rb.robustness_lead_rows("MAE", rates, slow, fast, np.tile(slow, (draws, 1)), np.tile(fast, (draws, 1)))
    by_kind = {r["kind"]: r for r in rows}
    auc_gap = table.loc["slow", "normalised_auc_oriented"] - table.loc["fast", "normalised_auc_oriented"]
    er_gap = (table.loc["slow", "effective_robustness_mean_oriented"]
              - table.loc["fast", "effective_robustness_mean_oriented"])
    assert by_kind["auc"]["lead"] == pytest.approx(auc_gap) and auc_gap > 0  # positive: the reference is more robust
    assert by_kind["er"]["lead"] == pytest.approx(er_gap) == pytest.approx(0.2)
    assert by_kind["er"]["lead_low"] == pytest.approx(0.2) and by_kind["er"]["p_value"] == pytest.approx(2 / 6)


def test_significant_best_needs_a_significant_lead_over_every_other_model():
    table = pd.DataFrame({"dataset": "mosi", "metric": "Non0_acc_2", "model": ["dar", "misa", "lnln"],
                          "reference": "dar", "auc_lead": [None, 0.02, 0.01],
                          "auc_significant": [None, True, True]})
    assert rb.significant_best(table, "auc") == {("mosi", "dar", "Non0_acc_2")}
    table.loc[2, "auc_significant"] = False
    assert rb.significant_best(table, "auc") == set()


def test_robustness_tex_bolds_the_reference_auc_only_when_its_leads_are_significant():
    from dar_mmsa.report import latex

    rows = []
    for model, values in (("dar", VALUES), ("misa", [0.70, 0.65, 0.55, 0.40])):
        for rate, value in zip(RATES, values):
            rows.append({"data": "real", "dataset": "mosi", "model": model, "display_name": model.upper(),
                         "protocol": "intra", "rate": rate, "Non0_acc_2_mean": value, "Mult_acc_5_mean": value})
    table = rb.robustness_table(pd.DataFrame(rows), baseline="misa", metrics=["Non0_acc_2", "Mult_acc_5"])

    def dar_row(significant):
        leads = pd.DataFrame([{"dataset": "mosi", "reference": "dar", "model": "misa", "metric": m, "kind": k,
                               "lead": 0.1, "lead_low": 0.05, "lead_high": 0.15, "p_value": 0.001,
                               "p_value_mc_se": 0.0003, "p_holm": 0.004, "q_bh": 0.002,
                               "p_holm_primary": 0.002 if m == "Non0_acc_2" else None,
                               "significant": significant and m == "Non0_acc_2"}
                              for m in ("Non0_acc_2", "Mult_acc_5") for k in ("auc", "er")])
        tex = latex.robustness_latex(rb.add_leads(table, leads), synthetic=False, seeds=(1111,))
        return next(line for line in tex.splitlines() if line.startswith("DAR"))

    # DAR's normalised AUC: 0.218 / 0.3 = 72.67 %; only the primary metric (Non0 Acc-2) can be marked
    assert dar_row(True).count(r"\textbf{72.67}") == 1
    assert r"\textbf" not in dar_row(False)
