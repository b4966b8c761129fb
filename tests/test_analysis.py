"""Per-sample predictions, significance / robustness reports, --report-only and the inference API on
one tiny benchmark (MISA and DAR, 1 seed, rates 0 and 0.5, 1 epoch, 16/8/9 synthetic MOSI samples)."""
import pickle
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import dar_mmsa
from dar_mmsa.benchmark import report, run
from dar_mmsa.benchmark.aggregate import METRICS
from dar_mmsa.benchmark.predictions import read_predictions
from dar_mmsa.benchmark.store import ResultStore
from dar_mmsa.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import run_benchmark  # noqa: E402
RATES = (0.0, 0.5)
GRID = dict(models=["misa", "dar"], datasets=["mosi"], seeds=[1111], rates=list(RATES), device="cpu", progress=False,
            overrides={"max_epochs": 1, "batch_size": 4})


@pytest.fixture(scope="module")
def bench(tmp_path_factory, small_mosi_root, tiny_bert):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("analysis")
    result = run(**GRID, data_root=small_mosi_root, pretrained=tiny_bert, out=out, name="t", say=lambda m: None)
    store = ResultStore(out / "t")
    runs = {t["model"]: t for t in store.trainings()}
    return SimpleNamespace(out=out, root=out / "t", result=result, store=store, runs=runs,
                           features=Path(small_mosi_root) / "MOSI" / "Processed" / "unaligned_50.pkl")


def stored(bench, model, rate):
    training = bench.runs[model]
    return bench.store.evaluation(training["run_id"], f"intra-{rate}", training["training_id"])


@pytest.mark.parametrize("model", ["misa", "dar"])
@pytest.mark.parametrize("rate", RATES)
def test_stored_predictions_reproduce_stored_metrics(bench, model, rate):
    """MMSA's MetricsTop on the stored predictions gives exactly the stored metrics (ours and MMSA's)."""
    from MMSA.utils import MetricsTop

    record = stored(bench, model, rate)
    columns = read_predictions(bench.root / record["predictions_file"])
    assert list(columns["index"]) == list(range(record["n_test"])) and columns["prediction"].dtype == np.float32
    metrics = MetricsTop("regression").getMetics("MOSI")(torch.from_numpy(columns["prediction"]).view(-1, 1),
                                                          torch.from_numpy(columns["label"]).view(-1, 1))
    assert {k: float(metrics[k]) for k in METRICS} == {k: record["metrics"][k] for k in METRICS}


def test_predictions_follow_the_test_split(bench):
    with open(bench.features, "rb") as f:
        test = pickle.load(f)["test"]
    columns = read_predictions(bench.root / stored(bench, "misa", 0.0)["predictions_file"])
    assert list(columns["id"]) == [str(i) for i in test["id"]]
    np.testing.assert_array_equal(columns["label"], np.asarray(test["regression_labels"], np.float32))


def test_significance_and_robustness_files(bench):
    for name in ("significance.csv", "robustness.csv", "robustness.tex", "report.json", "table1.tex"):
        assert (bench.root / name).is_file(), name
    sig = pd.read_csv(bench.root / "significance.csv")
    assert set(sig["condition"]) == {"intra-0.0", "intra-0.5", "table1_avg"} and set(sig["metric"]) == set(METRICS)
    assert len(sig) == 3 * len(METRICS)  # one other model
    assert set(sig["reference"]) == {"dar"} and set(sig["model"]) == {"misa"}  # DAR runs: it is the reference
    defined = sig[sig["defined"]]
    assert (defined["lead_low"] <= defined["lead_high"]).all() and set(sig["n_test"]) == {9}
    assert set(sig["n_boot"]) == {10000} and (defined["p_value"] >= 2 / 10001).all()
    families = sig.groupby("family").size().to_dict()
    assert families == {"primary": 2, "secondary": 6, "exploratory": 16}
    primary = sig[sig["family"] == "primary"]
    assert set(primary["metric"]) == {"Non0_acc_2", "MAE"} and (primary["condition"] == "table1_avg").all()
    assert (defined["p_holm"] >= defined["p_value"]).all() and (defined["q_bh"] >= defined["p_value"]).all()
    assert sig.loc[sig["family"] != "primary", "p_holm_primary"].isna().all()
    assert not sig.loc[sig["family"] != "primary", "significant"].any()
    assert (sig.loc[sig["defined"] == False, ["lead_low", "p_value"]].isna()).all().all()  # noqa: E712
    rob = pd.read_csv(bench.root / "robustness.csv")
    assert set(rob["model"]) == {"misa", "dar"} and set(rob["metric"]) == set(METRICS)
    per_rate = pd.read_csv(bench.root / "per_rate.csv")
    dar = per_rate[per_rate["model"] == "dar"].sort_values("rate")["Non0_acc_2_mean"].to_numpy()
    row = rob[(rob["model"] == "dar") & (rob["metric"] == "Non0_acc_2")].iloc[0]
    assert row["normalised_auc_oriented"] == pytest.approx(dar.mean())  # two points: the mean height
    assert rob[rob["model"] == "misa"]["effective_robustness_sum_oriented"].eq(0).all()  # MISA: the default baseline
    # the robustness leads of DAR (the reference) over MISA, from the same paired draws (unrounded metrics;
    # the table's come from MMSA's values, rounded to 4 decimals)
    misa = rob[(rob["model"] == "misa")].set_index("metric")
    dar_rob = rob[(rob["model"] == "dar")].set_index("metric")
    assert set(rob["reference"]) == {"dar"} and dar_rob["auc_lead"].isna().all()
    gap = dar_rob["normalised_auc_oriented"] - misa["normalised_auc_oriented"]
    assert misa["auc_lead"].to_numpy() == pytest.approx(gap.to_numpy(), abs=2e-4)
    er_gap = dar_rob["effective_robustness_mean_oriented"] - misa["effective_robustness_mean_oriented"]
    assert misa["er_lead"].to_numpy() == pytest.approx(er_gap.to_numpy(), abs=2e-4)
    assert {"auc_p_holm", "auc_q_bh", "er_p_holm", "er_significant"} <= set(rob.columns)


def test_report_only_rebuilds_identically_and_trains_nothing(bench, capsys):
    names = ("significance.csv", "robustness.csv", "robustness.tex", "table1.tex", "table1.csv", "per_rate.csv")
    before = {n: (bench.root / n).read_bytes() for n in names}
    evals = {p: p.stat().st_mtime_ns for p in bench.root.glob("store/runs/*/evals/*.json")}
    for n in names:
        (bench.root / n).unlink()
    capsys.readouterr()
    assert run_benchmark.main(["--report-only", "--out", str(bench.out), "--name", "t"]) == 0  # the CLI, in process
    assert {n: (bench.root / n).read_bytes() for n in names} == before
    assert {p: p.stat().st_mtime_ns for p in bench.root.glob("store/runs/*/evals/*.json")} == evals
    assert "0 training run(s) and 0 evaluation(s)" in capsys.readouterr().out


def test_report_compare_changes_the_reference(bench, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(bench.root, copy)
    report(copy, analysis={"compare": "misa"})
    assert set(pd.read_csv(copy / "significance.csv")["reference"]) == {"misa"}
    table1 = pd.read_csv(bench.root / "table1.csv")
    best = table1.sort_values("Non0_acc_2", ascending=False, kind="stable").iloc[0]["model"]
    result = report(copy, analysis={"compare": "best"})
    assert set(pd.read_csv(copy / "significance.csv")["reference"]) == {best}
    assert "was chosen on the test set (--compare best" in result.summary
    assert "chosen on the test set" not in report(copy, analysis={"compare": "dar"}).summary
    with pytest.raises(ConfigError, match="--primary Acc2"):
        report(copy, analysis={"primary": ["Acc2"]})
    with pytest.raises(ConfigError, match="--compare lnln"):
        report(copy, analysis={"compare": "lnln"})
    with pytest.raises(ConfigError, match="no results store"):
        report(tmp_path / "nothing-here")
    assert not (tmp_path / "nothing-here").exists()
    with pytest.raises(ConfigError, match="--breakdown-fraction"):
        report(copy, analysis={"fraction": 1.5})


@pytest.mark.parametrize("model", ["misa", "dar"])
def test_load_run_reproduces_the_harness(bench, model):
    """load_run + the predictor on the test split give the stored predictions bit for bit at r = 0 and 0.5."""
    predictor = dar_mmsa.load_run(bench.store.run_dir(bench.runs[model]["run_id"]))
    with open(bench.features, "rb") as f:
        test = pickle.load(f)["test"]
    for rate in RATES:
        columns = read_predictions(bench.root / stored(bench, model, rate)["predictions_file"])
        scores = predictor(test["text_bert"], test["audio"], test["vision"], audio_lengths=test["audio_lengths"],
                           vision_lengths=test["vision_lengths"], missing_rate=rate)
        np.testing.assert_array_equal(scores, columns["prediction"])


def test_predict_cli_writes_the_stored_predictions(bench, tmp_path):
    run_dir = bench.store.run_dir(bench.runs["dar"]["run_id"])
    out = tmp_path / "pred.csv"
    from dar_mmsa.__main__ import main

    assert main(["predict", "--run", str(run_dir), "--features", str(bench.features), "--missing-rate", "0.5",
                 "--out", str(out)]) == 0  # python -m dar_mmsa predict ..., in process
    frame = pd.read_csv(out, dtype={"id": str})
    columns = read_predictions(bench.root / stored(bench, "dar", 0.5)["predictions_file"])
    assert list(frame.columns) == ["id", "label", "prediction"]
    assert list(frame["id"]) == list(columns["id"])
    np.testing.assert_array_equal(frame["prediction"].to_numpy(np.float32), columns["prediction"])
    np.testing.assert_array_equal(frame["label"].to_numpy(np.float32), columns["label"])


def test_predict_bad_inputs(bench, tmp_path, capsys):
    from dar_mmsa.__main__ import main

    def cli_error(*argv):
        capsys.readouterr()
        code = main(["predict", *map(str, argv)])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and not captured.out, captured.err
        return lines[0]

    run_dir = bench.store.run_dir(bench.runs["misa"]["run_id"])
    with open(bench.features, "rb") as f:
        test = pickle.load(f)["test"]
    wrong = dict(test, audio=np.zeros((len(test["audio"]), test["audio"].shape[1], 3), np.float32))
    bad = tmp_path / "bad.pkl"
    with open(bad, "wb") as f:
        pickle.dump({"test": wrong}, f)
    assert "audio must be (N, T, 5)" in cli_error("--run", run_dir, "--features", bad)
    assert "no split 'valid'" in cli_error("--run", run_dir, "--features", bad, "--split", "valid")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run_dir, unfinished)
    (unfinished / "model.pth").unlink()
    assert "is not finished" in cli_error("--run", unfinished, "--features", bench.features)
    from dar_mmsa.text_encoder import write_tiny_bert

    other_bert = write_tiny_bert(tmp_path / "bert2", num_layers=2)
    assert "does not match the run's" in cli_error("--run", run_dir, "--features", bench.features,
                                                   "--pretrained", other_bert)
    assert "no run folder" in cli_error("--run", tmp_path / "missing", "--features", bench.features)


def test_predictor_bad_arrays(bench):
    predictor = dar_mmsa.load_run(bench.store.run_dir(bench.runs["dar"]["run_id"]))
    text, audio, vision = np.zeros((2, 3, 50)), np.zeros((2, 10, 5)), np.zeros((2, 10, 20))
    with pytest.raises(DataError, match="vision must be"):
        predictor(text, audio, np.zeros((2, 10, 7)))
    with pytest.raises(DataError, match=r"text must be BERT input"):
        predictor(np.zeros((2, 50)), audio, vision)
    with pytest.raises(DataError, match="samples"):
        predictor(text, audio[:1], vision)
    with pytest.raises(DataError, match="audio_lengths"):
        predictor(text, audio, vision, audio_lengths=[3, 11])


def test_mmsa_command_line_still_works(capsys):
    """`predict` is a subcommand; every other first argument is MMSA's command line as before."""
    from dar_mmsa.__main__ import main

    assert main(["--list-models"]) == 0 and "misa" in capsys.readouterr().out
    assert main(["-m", "nosuchmodel", "-d", "mosi"]) == 2
    assert "nosuchmodel" in capsys.readouterr().err


def test_report_only_refuses_grid_options(bench, capsys):
    assert run_benchmark.main(["--report-only", "--out", str(bench.out), "--name", "t", "--models", "dar"]) == 2
    assert "drop --models" in capsys.readouterr().err


@pytest.mark.parametrize("order", [["misa", "dar", "lnln"], ["dar", "misa"], ["lnln", "misa", "dar"]])
def test_default_reference_is_dar_whenever_dar_runs(order):
    from dar_mmsa.benchmark.analysis import reference_model

    table1 = pd.DataFrame({"dataset": "mosi", "model": order,
                           "Non0_acc_2": [0.9 if m != "dar" else 0.1 for m in order]})  # DAR the worst
    assert reference_model(table1, "mosi", order, None, order) == "dar"
    assert reference_model(table1, "mosi", order, "misa", order) == "misa"
    assert reference_model(table1, "mosi", order, "best", order) == next(m for m in order if m != "dar")
    without = [m for m in order if m != "dar"]
    assert reference_model(table1, "mosi", without, None, without) == without[0]  # else the first model given
    assert reference_model(table1, "mosi", without, None, order) is None  # DAR runs but has no predictions here


def test_primary_option_errors_on_the_command_line(bench, capsys):
    before = (bench.root / "report.json").read_bytes()
    assert run_benchmark.main(["--report-only", "--out", str(bench.out), "--name", "t", "--primary", "Acc2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --primary Acc2") and "Non0_acc_2" in err[0]
    assert (bench.root / "report.json").read_bytes() == before
