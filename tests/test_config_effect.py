"""bench/config_effect.py: the paired bootstrap of one committed results folder's configs against another's."""
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import config_effect  # noqa: E402

DEFAULTS = REPO / "results" / "dar-evidence-scale0.2"
TUNED = REPO / "results" / "tuned-table1-scale0.2"
COMMITTED = REPO / "results" / "tune-evidence-scale0.2" / "tuning_effect.csv"


def test_a_folder_against_itself_has_no_lead_and_p_one():
    table = config_effect.config_effect(TUNED, TUNED, n_boot=200)
    assert set(table["model"]) == {"dar", "misa", "lnln"}
    defined = table[table["defined"]]
    assert (defined["lead"] == 0).all() and (defined["p_value"] == 1).all()
    assert not table["significant"].any()


def test_leads_are_oriented_so_positive_means_the_second_folder_is_better():
    table = config_effect.config_effect(DEFAULTS, TUNED, n_boot=200)
    average = table[table["rate"].isna()].set_index(["model", "metric"])
    mae, acc = average.loc[("lnln", "MAE")], average.loc[("lnln", "Non0_acc_2")]
    assert np.isclose(mae["lead"], mae["value_before"] - mae["value_after"])
    assert np.isclose(acc["lead"], acc["value_after"] - acc["value_before"])
    assert (average["family"] == np.where(average.index.get_level_values("metric").isin(config_effect.PRIMARY),
                                          "primary", "exploratory")).all()
    assert len(table[table["family"] == "primary"]) == 6  # 3 models x (Acc-2 Non0, MAE)


def test_the_committed_tuning_effect_is_rebuilt(tmp_path):
    out = tmp_path / "tuning_effect.csv"
    assert config_effect.main([str(DEFAULTS), str(TUNED), "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(COMMITTED))


def test_a_folder_without_a_finished_table1_is_one_error_line(tmp_path, capsys):
    assert config_effect.main([str(tmp_path), str(TUNED)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "evaluations.csv" in err[0]
