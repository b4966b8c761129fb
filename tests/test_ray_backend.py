"""The Ray backend on one local 2-CPU Ray (started once for this module): the serial backend's tables
exactly, a killed worker retried (then reported), a killed driver resumed, an unshared output folder
refused; and the backend options' one-line errors (no Ray needed)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from dar_mmsa.benchmark import run
from dar_mmsa.benchmark.aggregate import METRICS
from dar_mmsa.benchmark.store import ResultStore
from dar_mmsa.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import run_benchmark  # noqa: E402

GRID = dict(models=["misa"], datasets=["mosi"], seeds=[1111, 1112], rates=[0.0, 0.5], device="cpu", progress=False,
            overrides={"max_epochs": 1, "batch_size": 8})
SAME = ["run_id", "condition", *METRICS, "Loss"]  # everything but wall times


@pytest.mark.parametrize("options, message", [
    (dict(jobs=2), "--jobs belongs to the Ray backend"),
    (dict(gpus_per_run=0.5, max_retries=1), "--gpus-per-run, --max-retries belong to the Ray backend"),
    (dict(backend="dask"), "unknown backend 'dask'"),
    (dict(backend="ray", jobs=0), "--jobs 0 must be at least 1"),
    (dict(backend="ray", cpus_per_run=0), "--cpus-per-run 0 must be above 0"),
    (dict(backend="ray", gpus_per_run=1.5), "above 1 it must be a whole number"),
    (dict(backend="ray", device="cuda"), "give --gpus-per-run"),
    (dict(backend="ray", device="cpu", gpus_per_run=1), "drop one of them"),
])
def test_backend_option_errors(tmp_path, options, message):
    kwargs = dict(GRID, out=tmp_path, name="t", **options)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        run(**kwargs)
    assert not (tmp_path / "t" / "store").exists()


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    ray = pytest.importorskip("ray")
    from dar_mmsa.benchmark.executors.ray_backend import HOOKS_ENV

    hooks = tmp_path_factory.mktemp("hooks")
    os.environ[HOOKS_ENV] = str(hooks)  # before ray.init: Ray's workers start with this environment
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False)
    try:
        yield SimpleNamespace(hooks=hooks, address=ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()
        os.environ.pop(HOOKS_ENV, None)


@pytest.fixture(scope="module")
def serial(tmp_path_factory, small_mosi_root, tiny_bert):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("bench")
    kwargs = dict(GRID, data_root=small_mosi_root, pretrained=tiny_bert, out=out)
    result = run(**kwargs, name="serial")
    assert result.failures == [] and result.evaluated == 4
    run_ids = {t["seed"]: t["run_id"] for t in ResultStore(out / "serial").trainings()}
    return SimpleNamespace(result=result, kwargs=kwargs, out=out, run_ids=run_ids)


def assert_same_tables(result, reference):
    pd.testing.assert_frame_equal(result.table1, reference.table1)
    pd.testing.assert_frame_equal(result.per_condition, reference.per_condition)
    pd.testing.assert_frame_equal(result.evaluations[SAME], reference.evaluations[SAME])


def test_ray_gives_the_serial_tables(ray_cluster, serial):
    result = run(**serial.kwargs, name="ray", backend="ray", jobs=2)
    assert (result.trained, result.evaluated, result.failures) == (2, 4, [])
    assert_same_tables(result, serial.result)
    assert "backend ray: 2 of 2 run(s) finished, 0 failed" in result.summary
    for run_id in serial.run_ids.values():
        assert "TEST-(misa)" in (serial.out / "ray" / "logs" / f"{run_id}.log").read_text()


def test_killed_worker_is_retried_then_reported(ray_cluster, serial):
    """Seed 1111's worker dies once after its first evaluation: retried, nothing redone, same numbers.
    Seed 1112's worker dies as each attempt starts: one error line with its log; a rerun completes it."""
    once, always = (ray_cluster.hooks / f"kill-{kind}-{serial.run_ids[seed]}" for kind, seed in
                    (("once", 1111), ("always", 1112)))
    once.touch()
    always.touch()
    try:
        result = run(**serial.kwargs, name="killed-worker", backend="ray", jobs=2, max_retries=1)
    finally:
        always.unlink()
    assert not once.exists(), "the first attempt did not reach its second evaluation"
    root = serial.out / "killed-worker"
    (failure,) = result.failures
    log_1112 = root / "logs" / f"{serial.run_ids[1112]}.log"
    assert failure == (f"error: misa/mosi/seed 1112 failed (its worker died on each of 2 attempt(s): "
                       f"WorkerCrashedError); see {log_1112}")
    assert "(driver) misa/mosi/seed 1112: its worker died" in log_1112.read_text()
    log_1111 = (root / "logs" / f"{serial.run_ids[1111]}.log").read_text()
    for line in ("trained misa/mosi/seed 1111", "seed 1111 intra-0.0:", "seed 1111 intra-0.5:"):
        assert log_1111.count(line) == 1, line  # the retry redid neither the training nor the first evaluation
    done = result.evaluations[result.evaluations["seed"] == 1111][SAME].reset_index(drop=True)
    expected = serial.result.evaluations[serial.result.evaluations["seed"] == 1111][SAME].reset_index(drop=True)
    pd.testing.assert_frame_equal(done, expected)

    resumed = run(**serial.kwargs, name="killed-worker", backend="ray", jobs=2)
    assert (resumed.trained, resumed.evaluated, resumed.failures) == (1, 2, [])
    assert_same_tables(resumed, serial.result)


def test_killed_driver_resumes_without_redoing(ray_cluster, serial, small_mosi_root, tiny_bert, tmp_path):
    """The CLI on Ray, killed once a training is stored; rerun: what was stored stays as it was."""
    command = [sys.executable, str(REPO / "run_benchmark.py"), "--no-progress", "--models", "misa", "--seeds",
               "1111", "1112", "--rates", "0.0", "0.5", "--data-root", small_mosi_root, "--pretrained", tiny_bert,
               "--device", "cpu", "--set", "max_epochs=1", "batch_size=8", "--out", tmp_path, "--name", "killed",
               "--backend", "ray", "--ray-address", ray_cluster.address, "--jobs", "1"]
    killed = subprocess.Popen(list(map(str, command)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, HF_HUB_OFFLINE="1"))
    store = ResultStore(tmp_path / "killed")
    deadline = time.monotonic() + 300
    while not store.trainings():
        assert killed.poll() is None, f"ended before it could be killed: {killed.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    stored = {p: p.read_bytes() for p in store.runs.glob("*/*.json")}
    stored.update({p: p.read_bytes() for p in store.runs.glob("*/evals/*.json")})
    assert len([p for p in stored if p.name == "training.json"]) < 2, "killed too late to test resuming"

    resumed = run(**dict(serial.kwargs, out=tmp_path), name="killed", backend="ray", jobs=2)
    assert resumed.failures == [] and resumed.trained <= 1
    assert {p: p.read_bytes() for p in stored} == stored, "a finished training or evaluation was redone"
    assert [t["trainings"] for t in store.trainings()] == [1, 1]
    assert_same_tables(resumed, serial.result)


def test_output_folder_unseen_by_workers_is_one_error_line(ray_cluster, serial, tmp_path, capsys):
    marker = ray_cluster.hooks / "probe-elsewhere"
    marker.touch()
    try:
        code = run_benchmark.main(["--no-progress", "--models", "misa", "--seeds", "1111", "--rates", "0.0",
                                   "--data-root", serial.kwargs["data_root"], "--pretrained",
                                   serial.kwargs["pretrained"], "--device", "cpu", "--out", str(tmp_path), "--name", "t", "--backend", "ray"])
    finally:
        marker.unlink()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: output folder {tmp_path / 't'} is not shared with Ray node ")
    assert "put --out on storage that every node mounts" in err[0]
    assert ResultStore(tmp_path / "t").trainings() == [] and not list(tmp_path.rglob(".shared-probe-*"))
