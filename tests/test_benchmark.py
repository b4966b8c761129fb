"""The benchmark harness on a tiny grid (MISA, 1 seed, 2 rates, 1 epoch, synthetic MOSI)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from conftest import registered_test_model
import torch

from dar_mmsa import runner
from dar_mmsa.benchmark import run
from dar_mmsa.benchmark.aggregate import METRICS
from dar_mmsa.benchmark.store import ResultStore, read_json, write_json
from dar_mmsa.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

GRID = dict(models=["misa"], datasets=["mosi"], seeds=[1111], rates=[0.0, 0.5], device="cpu", progress=False,
            overrides={"max_epochs": 1, "batch_size": 8})


@pytest.fixture(scope="module")
def bench(tmp_path_factory, synthetic_root, tiny_bert):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("bench")
    kwargs = dict(GRID, data_root=synthetic_root, pretrained=tiny_bert, out=out, name="t")

    def again(**changes):
        messages = []
        result = run(**dict(kwargs, **changes), say=messages.append)
        return result, messages

    result, messages = again()
    return SimpleNamespace(out=out, root=out / "t", result=result, messages=messages, again=again, kwargs=kwargs)


def test_trains_once_and_writes_reports(bench):
    result = bench.result
    assert (result.trained, result.evaluated, result.failures) == (1, 2, [])
    for name in ("evaluations.csv", "per_rate.csv", "table1.csv", "table1.tex", "tables.tex", "summary.txt",
                 "figure4.png", "figure4.pdf"):
        assert (bench.root / name).is_file(), name
    per_rate = pd.read_csv(bench.root / "per_rate.csv")
    assert list(per_rate["rate"]) == [0.0, 0.5] and set(per_rate["data"]) == {"synthetic"}
    assert "np.float" not in (bench.root / "table1.csv").read_text()
    table = pd.read_csv(bench.root / "table1.csv")
    assert table.loc[0, "display_name"] == "MISA" and table.loc[0, "n_conditions"] == 2
    assert table.loc[0, "Non0_acc_2"] == pytest.approx(per_rate["Non0_acc_2_mean"].mean())
    assert "Synthetic data" in (bench.root / "table1.tex").read_text()
    assert "SYNTHETIC" in result.summary
    verdict = [line for line in result.summary.splitlines() if line.startswith("mosi     MISA") and "learned" in line]
    assert len(verdict) == 1 and "mean predictor --" not in verdict[0]  # recorded with the training
    logs = list((bench.root / "logs").glob("*.log"))
    assert len(logs) == 1 and "TEST-(misa)" in logs[0].read_text()


def test_store_records(bench):
    store = ResultStore(bench.root)
    (training,) = store.trainings()
    assert training["trainings"] == 1 and training["data"]["synthetic"] is True
    assert training["data"]["fingerprint"].startswith("sha256")
    record = store.evaluation(training["run_id"], "intra-0.5", training["training_id"])
    assert set(METRICS) <= set(record["metrics"]) and all(type(v) is float for v in record["metrics"].values())
    assert record["versions"]["MMSA"] == "2.2.1" and record["wall_time_s"] > 0
    assert record["condition"]["rate"] == 0.5 and record["seed"] == 1111
    assert not list(store.root.rglob("*.tmp")) and not list(store.root.rglob("*.partial*.pth"))


def test_rate_zero_matches_mmsa_do_test(bench, synthetic_root, tiny_bert):
    """At r = 0 the harness gives exactly what MMSA's own do_test gives on its own test loader."""
    store = ResultStore(bench.root)
    (training,) = store.trainings()
    args = runner.build_args("misa", "mosi", data_root=synthetic_root, pretrained=tiny_bert, device="cpu",
                             seed=1111, save_path=store.checkpoint(training["run_id"]), overrides=GRID["overrides"])
    loaders = runner.load_data(args)
    model = runner.load_checkpoint(runner.build_model(args), args)
    mmsa = runner.build_trainer(args).do_test(model, loaders["test"], mode="TEST")  # MMSA's loader, shuffled
    ours = store.evaluation(training["run_id"], "intra-0.0", training["training_id"])["metrics"]
    assert {k: ours[k] for k in METRICS} == {k: float(mmsa[k]) for k in METRICS}


def test_rerun_skips_everything(bench):
    before = ResultStore(bench.root).trainings()[0]
    checkpoint = ResultStore(bench.root).checkpoint(before["run_id"])
    mtime = checkpoint.stat().st_mtime_ns
    result, _ = bench.again()
    assert (result.trained, result.evaluated) == (0, 0)
    assert checkpoint.stat().st_mtime_ns == mtime
    assert ResultStore(bench.root).trainings()[0]["trainings"] == 1
    pd.testing.assert_frame_equal(result.table1, bench.result.table1)


def test_kill_and_resume(bench, tmp_path, synthetic_root, tiny_bert):
    """The CLI killed mid-grid (training done, evaluations not), then rerun: the table of an uninterrupted
    run, and the finished training is not redone."""
    command = [sys.executable, str(REPO / "run_benchmark.py"), "--no-progress", "--models", "misa", "--datasets",
               "mosi", "--seeds", "1111", "--rates", "0.0", "0.5", "--data-root", str(synthetic_root), "--pretrained",
               str(tiny_bert), "--device", "cpu", "--set", "max_epochs=1", "batch_size=8", "--out", str(tmp_path),
               "--name", "killed"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(torch.get_num_threads()))  # same numerics as here
    killed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    store = ResultStore(tmp_path / "killed")
    deadline = time.monotonic() + 300
    while not store.trainings():  # the training has been committed
        assert killed.poll() is None, f"ended before it could be killed: {killed.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    killed.kill()
    killed.wait()
    (training,) = store.trainings()
    mtime = store.checkpoint(training["run_id"]).stat().st_mtime_ns
    done = len(list((store.run_dir(training["run_id"]) / "evals").glob("*.json")))
    assert done < 2, "killed too late to test resuming"

    resumed, _ = bench.again(out=tmp_path, name="killed")
    assert (resumed.trained, resumed.evaluated) == (0, 2 - done)
    assert store.checkpoint(training["run_id"]).stat().st_mtime_ns == mtime
    assert store.trainings()[0]["trainings"] == 1
    pd.testing.assert_frame_equal(resumed.table1, bench.result.table1)
    pd.testing.assert_frame_equal(resumed.per_condition, bench.result.per_condition)


def test_store_ignores_unfinished_files(tmp_path):
    store = ResultStore(tmp_path)
    store.partial_checkpoint("r").parent.mkdir(parents=True)
    store.partial_checkpoint("r").write_bytes(b"half a checkpoint")
    assert store.training("r") is None, "a training without its record and final checkpoint is not done"
    record = store.commit_training("r", {"model": "m"})
    assert store.training("r") == record and not store.partial_checkpoint("r").exists()
    write_json(store.eval_path("r", "intra-0.0"), {"training_id": record["training_id"], "metrics": {}})
    store.eval_path("r", "intra-0.5").write_text('{"training_id": "')  # torn write from a foreign tool
    (store.eval_path("r", "x").parent / ".intra-0.9.json.123.tmp").write_text("{")
    assert [r["metrics"] for r in store.evaluations()] == [{}]
    assert read_json(store.eval_path("r", "intra-0.5")) is None
    store.partial_checkpoint("r").write_bytes(b"retrained")
    again = store.commit_training("r", {"model": "m"})
    assert again["trainings"] == 2 and list(store.evaluations()) == [], "evaluations of an older checkpoint are stale"


def test_eval_only_adds_a_rate_without_training(bench):
    result, _ = bench.again(rates=[0.0, 0.5, 0.9], eval_only=True)
    assert (result.trained, result.evaluated) == (0, 1)
    assert list(result.per_condition["label"]) == ["0.0", "0.5", "0.9"]


def test_eval_only_needs_a_checkpoint(bench):
    with pytest.raises(ConfigError, match="no saved checkpoint for misa/mosi/seed 1112"):
        bench.again(seeds=[1112], eval_only=True)
    with pytest.raises(ConfigError, match="no saved checkpoint"):
        bench.again(overrides={"max_epochs": 1, "batch_size": 8, "learning_rate": 0.5}, eval_only=True)


def test_inter_protocol_reuses_the_checkpoint(bench):
    result, _ = bench.again(protocol="inter", rates=None, drop_rates=[0.3], eval_only=True)
    assert (result.trained, result.evaluated) == (0, 8)
    assert list(result.inter.columns[-8:]) == ["L", "A", "V", "L+A", "L+V", "A+V", "L+A+V", "Avg"]
    for name in ("inter.csv", "inter_table.csv", "inter_table.tex", "figure_inter.png"):
        assert (bench.root / name).is_file(), name
    drop = result.evaluations[result.evaluations["protocol"] == "drop"].iloc[0]
    assert 0.1 < drop["realised_drop_fraction"] < 0.5
    full = result.evaluations.set_index("condition").loc["subset-LAV", list(METRICS)]
    at_zero = bench.result.evaluations.set_index("condition").loc["intra-0.0", list(METRICS)]
    assert list(full) == list(at_zero), "all modalities present == rate 0"


def test_per_modality_rates_are_their_own_condition(bench):
    with pytest.raises(ConfigError, match="not both"):
        bench.again(rates_per_modality=["l=0.0", "a=0.5", "v=0.5"])
    result, _ = bench.again(rates=None, rates_per_modality=["l=0.0", "a=0.5", "v=0.5"], eval_only=True)
    assert (result.trained, result.evaluated) == (0, 1)
    assert list(result.per_condition["condition"]) == ["intra-l0.0-a0.5-v0.5"]
    stored = json.loads((bench.root / "store" / "runs" / result.evaluations["run_id"][0] / "evals" /
                         "intra-l0.0-a0.5-v0.5.json").read_text())
    assert stored["condition"]["rate"] is None and stored["condition"]["rate_audio"] == 0.5


def test_without_matplotlib_one_warning(bench, monkeypatch):
    from dar_mmsa.report import figures

    monkeypatch.setattr(figures, "matplotlib_available", lambda: False)
    result, messages = bench.again()
    assert [m for m in messages if "matplotlib" in m] == [messages[0]] and len(messages) == 1
    assert all(p.suffix not in (".png", ".pdf") for p in result.files)


class ImportanceStub(torch.nn.Module):
    """A tiny registered model whose output dict has "importance" (B, 6), like the DERL-style model."""

    def __init__(self, args):
        super().__init__()
        width = args["feature_dims"][1] + args["feature_dims"][2] + 1
        self.head, self.gate = torch.nn.Linear(width, 1), torch.nn.Linear(width, 6)

    def forward(self, text, audio, vision):
        kept = (text[:, 0] != 100).float().mean(dim=1, keepdim=True)
        x = torch.cat([audio.mean(dim=1), vision.mean(dim=1), kept], dim=1)
        return {"M": self.head(x), "importance": torch.softmax(self.gate(x), dim=-1)}


@pytest.fixture
def stub_config(tmp_path):
    yield from registered_test_model("bench_stub", ImportanceStub, tmp_path / "config.json", learning_rate=1e-3,
                                     max_epochs=1, display="Stub")


def test_importance_written_for_models_that_expose_it(tmp_path, synthetic_root, tiny_bert, stub_config):
    from dar_mmsa.data.synthetic import split_sizes

    torch.manual_seed(0)
    result = run(models=["bench_stub"], datasets=["mosi"], seeds=[1111], rates=[0.5], protocol="all", drop_rates=[0.5],
                 data_root=synthetic_root, pretrained=tiny_bert, device="cpu", out=tmp_path, name="imp",
                 config_file=stub_config, progress=False)
    assert result.failures == [] and result.evaluated == 1 + 7 + 1
    files = sorted((tmp_path / "imp" / "importance").rglob("*.csv"))
    assert len(files) == 1 + 7 + 1
    frame = pd.read_csv(next(f for f in files if f.name == "subset-L.csv"))
    experts = ["P_l", "P_a", "P_v", "S_l", "S_a", "S_v"]
    assert list(frame.columns) == ["index", "id", "label", "prediction", *experts]
    assert len(frame) == split_sizes("mosi", 0.04)[2] and list(frame["index"]) == list(range(len(frame)))
    assert frame[experts].sum(axis=1).round(5).eq(1).all()
    record = json.loads((files[0].parents[2] / "store" / "runs" / files[0].parent.name / "evals" /
                         files[0].name.replace(".csv", ".json")).read_text())
    assert record["importance_file"] == str(files[0].relative_to(tmp_path / "imp"))
    assert result.table1.loc[0, "display_name"] == "Stub"
    means = pd.read_csv(tmp_path / "imp" / "importance_means.csv")
    assert list(means["condition"]) == ["intra-0.5", "subset-L", "subset-A", "subset-V", "subset-LA", "subset-LV",
                                        "subset-AV", "subset-LAV", "drop-0.5"]
    row = means.set_index("condition").loc["subset-L"]
    assert row["samples"] == len(frame)
    assert np.allclose(row[experts].to_numpy(float), frame[experts].mean().to_numpy(), atol=5e-5)
