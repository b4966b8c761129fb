"""A NaN metric never shrinks a mean silently (issue 9, item 3)."""
import math

import pytest

from dar_mmsa.benchmark import aggregate
from dar_mmsa.benchmark.grid import Condition
from dar_mmsa.report import latex
from dar_mmsa.report.latex import NAN_MARK


def _record(seed, condition, corr, mae=0.5):
    metrics = {m: 0.5 for m in aggregate.METRICS}
    metrics.update(Corr=corr, MAE=mae, Loss=mae)
    return {"model": "dar", "display_name": "DAR", "dataset": "mosi", "seed": seed, "run_id": f"dar-{seed}",
            "config_hash": "h", "condition": condition.to_record(), "metrics": metrics,
            "data": {"synthetic": True}, "wall_time_s": 1.0}


@pytest.fixture
def frame():
    c0, c1 = Condition.intra(0.0), Condition.intra(0.5)
    records = [_record(1111, c0, 0.2), _record(1112, c0, float("nan")), _record(1113, c0, 0.5),
               _record(1111, c1, 0.1), _record(1112, c1, 0.3), _record(1113, c1, 0.2)]
    return aggregate.records_frame(records)


def test_per_condition_counts_valid_values(frame):
    per = aggregate.per_condition(frame)
    row = per[per["condition"] == "intra-0.0"].iloc[0]
    assert row["n_seeds"] == 3 and row["Corr_n"] == 2 and row["MAE_n"] == 3
    assert row["Corr_mean"] == pytest.approx(0.35)  # over the two valid seeds, and said so
    assert row["Corr_std"] == pytest.approx(math.sqrt(0.045))


def test_table1_reports_nan_count_and_latex_marks_the_cell(frame):
    table = aggregate.table1(aggregate.per_condition(frame))
    row = table.iloc[0]
    assert row["Corr_n_nan"] == 1 and row["MAE_n_nan"] == 0
    assert row["Corr"] == pytest.approx((0.35 + 0.2) / 2)
    tex = latex.table1_latex(table, synthetic=True, conditions="missing rates 0.0, 0.5", seeds=(1111, 1112, 1113))
    assert NAN_MARK in tex and "undefined (NaN)" in tex
    body = [line for line in tex.splitlines() if line.startswith("DAR")][0]
    assert body.count(NAN_MARK) == 1 and "0.275}" + NAN_MARK in body


def test_a_condition_without_any_valid_value_leaves_the_cell_empty(frame):
    frame.loc[frame["condition"] == "intra-0.5", "Corr"] = float("nan")
    table = aggregate.table1(aggregate.per_condition(frame))
    assert table.iloc[0]["Corr"] is None or math.isnan(table.iloc[0]["Corr"])
    assert table.iloc[0]["Corr_n_nan"] == 4


def test_summary_names_the_nan_values(frame):
    lines = aggregate.nan_lines(frame)
    assert lines == ["note: Corr is NaN in 1 of 6 evaluations of dar/mosi (seeds 1112); its means use the "
                     "valid seeds only, and cells built on fewer seeds are marked *"]
    assert aggregate.nan_lines(frame.dropna()) == []


def test_inter_table_counts_nan(frame):
    records = [_record(s, Condition.subset(p), 0.3) for s in (1111, 1112) for p in
               [(True, False, False), (False, True, False), (False, False, True), (True, True, False),
                (True, False, True), (False, True, True), (True, True, True)]]
    records[0]["metrics"]["Non0_acc_2"] = float("nan")
    table = aggregate.inter_table(aggregate.per_condition(aggregate.records_frame(records)))
    assert table.iloc[0]["n_nan"] == 1 and table.iloc[0]["n_nan L"] == 1 and table.iloc[0]["n_nan A"] == 0
    row = [line for line in latex.inter_latex(table, synthetic=True, seeds=(1111, 1112)).splitlines()
           if line.startswith("DAR")][0]
    assert row.count(NAN_MARK) == 2  # the L cell and the average
