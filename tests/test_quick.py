"""The two small synthetic runs (``--smoke``: the pipeline, ``--quick``: models that learn) and the
summary's "learned?" check (``dar_mmsa.benchmark.learned``)."""
import pandas as pd
import pytest

import run_benchmark
from dar_mmsa.benchmark import api
from dar_mmsa.benchmark.learned import learned_failures, learned_lines, mean_predictor, mean_predictor_maes
from dar_mmsa.benchmark.presets import QUICK, SMOKE, pick_preset, preset_overrides


class _Stop(Exception):
    pass


def _planned_settings(monkeypatch, tmp_path, **kwargs):
    """The Settings api.run hands to planning (nothing trained, no data written)."""
    captured = {}
    monkeypatch.delenv("DAR_MMSA_DATA_ROOT", raising=False)

    def prepare(settings, **kw):
        captured["prepare"] = kw
        return 1.0

    def stop(settings):
        captured["settings"] = settings
        raise _Stop

    monkeypatch.setattr(api, "prepare_inputs", prepare)
    monkeypatch.setattr(api, "plan", stop)
    with pytest.raises(_Stop):
        api.run(out=tmp_path, device="cpu", progress=False, say=lambda m: None, **kwargs)
    return captured["settings"], captured["prepare"]


def test_smoke_keeps_the_two_epoch_settings(monkeypatch, tmp_path):
    assert (SMOKE.models, SMOKE.seeds, SMOKE.scale, SMOKE.rates) == (("dar", "misa"), (1111, 1112, 1113), 0.1, None)
    assert SMOKE.overrides == {"max_epochs": 2, "epoch_cap": 2, "batch_size": 16}
    settings, prepared = _planned_settings(monkeypatch, tmp_path, smoke=True)
    assert settings.models == ("dar", "misa") and settings.seeds == (1111, 1112, 1113)
    assert settings.overrides == {"max_epochs": 2, "epoch_cap": 2, "batch_size": 16}
    assert [c.rate for c in settings.conditions] == pytest.approx([i / 10 for i in range(10)])
    assert settings.store.root == tmp_path / "synthetic-smoke" and prepared["smoke"] and not prepared["quick"]


def test_quick_uses_its_preset_and_explicit_flags_win(monkeypatch, tmp_path):
    settings, _ = _planned_settings(monkeypatch, tmp_path, quick=True)
    assert settings.models == QUICK.models and settings.seeds == tuple(QUICK.seeds)
    assert settings.overrides == QUICK.overrides and settings.store.root == tmp_path / "synthetic-quick"
    expected_rates = QUICK.rates if QUICK.rates is not None else [i / 10 for i in range(10)]
    assert [c.rate for c in settings.conditions] == pytest.approx(list(expected_rates))
    settings, _ = _planned_settings(monkeypatch, tmp_path, quick=True, models=["misa"], seeds=[7], rates=[0.5],
                                    overrides={"max_epochs": 1})
    assert settings.models == ("misa",) and settings.seeds == (7,) and [c.rate for c in settings.conditions] == [0.5]
    assert settings.overrides["max_epochs"] == 1


def test_quick_trains_longer_than_smoke():
    assert QUICK.overrides["max_epochs"] > SMOKE.overrides["max_epochs"]


def test_quick_reads_aligned_features_only_where_the_dataset_ships_them():
    assert preset_overrides(QUICK, ["mosi", "mosei"])["need_data_aligned"] is True
    assert "need_data_aligned" not in preset_overrides(QUICK, ["mosi", "sims"])  # SIMS: unaligned_39 only
    assert preset_overrides(SMOKE, ["sims"]) == SMOKE.overrides and preset_overrides(None, ["mosi"]) == {}


def test_quick_and_smoke_together_is_one_error_line(tmp_path, capsys):
    assert pick_preset(False, False) is None and pick_preset(True) is QUICK and pick_preset(False, True) is SMOKE
    code = run_benchmark.main(["--quick", "--smoke", "--no-progress", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "--smoke" in err[0]
    assert not any(tmp_path.iterdir())


def test_mean_predictor_by_hand():
    # training mean 1.0; test |0 - 1| + |3 - 1| + |1 - 1| = 3 over 3 samples
    assert mean_predictor([0.0, 2.0, 1.0, 1.0], [0.0, 3.0, 1.0]) == {"train_label_mean": 1.0, "test_mae": 1.0}


def test_learned_conditions():
    assert learned_failures(0.9, 1.0, 0.20, 0.25, 0.3) == []
    assert learned_failures(1.0, 1.0, 0.20, 0.25, 0.3) == ["MAE not below the mean predictor's"]
    assert learned_failures(0.9, 1.0, 0.155, 0.155, 0.3) == ["the two finest accuracies are equal"]
    assert learned_failures(0.9, 1.0, 0.20, 0.25, 0.2) == ["Corr not above 0.2"]
    assert learned_failures(0.9, None, 0.20, 0.25, float("nan")) == ["no mean predictor recorded",
                                                                      "Corr not above 0.2"]


def _per_condition(rows):
    columns = ["dataset", "model", "display_name", "protocol", "rate", "MAE_mean", "Mult_acc_7_mean",
               "Mult_acc_5_mean", "Mult_acc_3_mean", "Corr_mean"]
    return pd.DataFrame(rows, columns=columns)


def test_learned_lines_one_per_model_at_rate_zero():
    frame = _per_condition([
        ("mosi", "dar", "DAR", "intra", 0.0, 1.10, 0.18, 0.22, None, 0.45),
        ("mosi", "dar", "DAR", "intra", 0.5, 1.50, 0.15, 0.15, None, 0.05),  # not read: r = 0.5
        ("mosi", "misa", "MISA", "intra", 0.0, 1.30, 0.155, 0.155, None, 0.10),
        ("sims", "dar", "DAR", "intra", 0.0, 0.40, None, 0.30, 0.50, 0.35),
        ("mosei", "dar", "DAR", "intra", 0.3, 0.90, 0.20, 0.25, None, 0.40),
    ])
    baselines = mean_predictor_maes([
        {"dataset": "mosi", "model": "dar", "mean_predictor": {"test_mae": 1.20}},
        {"dataset": "mosi", "model": "dar", "mean_predictor": {"test_mae": 1.30}},
        {"dataset": "mosi", "model": "misa", "mean_predictor": {"test_mae": 1.25}},
        {"dataset": "sims", "model": "dar", "mean_predictor": {"test_mae": 0.45}},
    ])
    assert baselines[("mosi", "dar")] == pytest.approx(1.25)
    lines = learned_lines(frame, baselines)
    assert lines[0] == "" and lines[1].startswith("Learned? At r = 0")
    dar, misa, sims, mosei = lines[2:]
    assert dar.startswith("mosi     DAR ") and " learned: MAE 1.100 (mean predictor 1.250), Acc-5 22.00 / Acc-7 18.00" \
        ", Corr 0.450" in dar
    assert "NOT learned (MAE not below the mean predictor's; the two finest accuracies are equal; Corr not above 0.2)" in misa
    assert sims.startswith("sims     DAR ") and " learned: " in sims and "Acc-3 50.00 / Acc-5 30.00" in sims
    assert mosei.startswith("mosei    DAR ") and "not checked: no evaluation at missing rate 0" in mosei
    assert learned_lines(_per_condition([]), {}) == []


def test_a_training_without_a_mean_predictor_is_not_called_learned():
    frame = _per_condition([("mosi", "dar", "DAR", "intra", 0.0, 0.5, 0.2, 0.3, None, 0.9)])
    (line,) = learned_lines(frame, mean_predictor_maes([{"dataset": "mosi", "model": "dar"}]))[2:]
    assert "NOT learned (no mean predictor recorded)" in line and "mean predictor --" in line
