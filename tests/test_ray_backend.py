"""The Ray backend on one local 2-CPU Ray (started once for this module): the serial backend's tables
exactly, a killed worker retried (then reported), a killed driver resumed, an unshared output folder
or a lock error refused in one line, bf16 not judged on the driver; and without Ray: the backend
options' one-line errors, lock errors and lock holders, one partial checkpoint per attempt, the
attempt cap that bounds Ray's out-of-memory retries, Ray's out-of-memory line, --deterministic."""
import json
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


def _cli_with_probe_hook(ray_cluster, serial, tmp_path, capsys, hook):
    """Exit code and error lines (notes left out) of a one-run Ray command while the node probe's test
    hook ``hook`` is set."""
    marker = ray_cluster.hooks / hook
    marker.touch()
    try:
        code = run_benchmark.main(["--no-progress", "--models", "misa", "--seeds", "1111", "--rates", "0.0",
                                   "--data-root", serial.kwargs["data_root"], "--pretrained",
                                   serial.kwargs["pretrained"], "--device", "cpu", "--out", str(tmp_path), "--name", "t",
                                   "--backend", "ray"])
    finally:
        marker.unlink()
    return code, [line for line in capsys.readouterr().err.splitlines() if not line.startswith("note: ")]


def test_output_folder_unseen_by_workers_is_one_error_line(ray_cluster, serial, tmp_path, capsys):
    code, err = _cli_with_probe_hook(ray_cluster, serial, tmp_path, capsys, "probe-elsewhere")
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: output folder {tmp_path / 't'} is not shared with Ray node ")
    assert "put --out on storage that every node mounts" in err[0]
    assert ResultStore(tmp_path / "t").trainings() == [] and not list(tmp_path.rglob(".shared-probe-*"))


def test_a_probed_lock_error_is_one_line_naming_it(ray_cluster, serial, tmp_path, capsys):
    code, err = _cli_with_probe_hook(ray_cluster, serial, tmp_path, capsys, "lock-error")
    assert code == 2 and len(err) == 1, err
    assert f"cannot lock {tmp_path / 't' / '.lock'} (ENOLCK: " in err[0] and "no working file locks" in err[0]
    assert "docs/benchmark.md" in err[0] and "another benchmark" not in err[0]


def test_bf16_with_gpus_is_not_checked_on_a_cpu_driver(ray_cluster, serial, tmp_path):
    from dar_mmsa.training.precision import check_precision

    assert check_precision("bf16", "cuda", on_device=False) == "bf16"
    with pytest.raises(ConfigError) as raised:  # this Ray has no GPU: the resource check, not a bf16 verdict
        run(**dict(serial.kwargs, out=tmp_path, device="auto"), name="t", backend="ray", gpus_per_run=1,
            precision="bf16")
    assert "no Ray node has 1 CPU(s) and 1 GPU(s) for one run" in str(raised.value)


# ---------------------------------------------------------------------------- no Ray needed
def test_an_injected_lock_error_is_reported_as_such(tmp_path, monkeypatch):
    import errno
    import fcntl

    from dar_mmsa.benchmark.locks import LocksUnsupported

    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    store = ResultStore(tmp_path / "r")
    with pytest.raises(LocksUnsupported, match=r"cannot lock .*\.lock \(ENOLCK: No locks available\): the filesystem "
                                               r"has no working file locks"):
        with store.lock():
            pass
    with pytest.raises(LocksUnsupported, match="ENOLCK"):
        with store.for_attempt("a1").run_lock("run"):
            pass


def test_a_held_run_lock_names_its_holder_and_the_wait_ends(tmp_path):
    import fcntl
    import socket

    from dar_mmsa.benchmark.locks import LockTimeout

    first = ResultStore(tmp_path).for_attempt("node1-11-a1-x")
    waited = []
    with first.run_lock("run"):
        with pytest.raises(LockTimeout) as raised:
            with ResultStore(tmp_path).for_attempt("node2-22-a2-y").run_lock("run", waiting=waited.append,
                                                                              timeout_s=0.3):
                pass
        held = json.loads((first.run_dir("run") / ".lock").read_text())
    assert (held["host"], held["pid"], held["attempt"]) == (socket.gethostname(), os.getpid(), "node1-11-a1-x")
    message = str(raised.value)
    assert message.startswith(f"run run stayed locked by host {socket.gethostname()} (pid {os.getpid()}, attempt "
                              f"node1-11-a1-x, since ") and "for 0.3s" in message
    assert len(waited) == 1 and "waiting for host" in waited[0]
    with open(first.run_dir("run") / ".lock") as handle:  # released on exit
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_two_attempts_never_share_a_partial_checkpoint(tmp_path):
    store = ResultStore(tmp_path)
    a, b = store.for_attempt("hostA-1-a1-aaaaaa"), store.for_attempt("hostB-2-a2-bbbbbb")
    assert a.partial_checkpoint("r") != b.partial_checkpoint("r")
    assert ResultStore(tmp_path).partial_checkpoint("r").name == "model.partial.pth"
    a.partial_checkpoint("r").parent.mkdir(parents=True)
    a.partial_checkpoint("r").write_bytes(b"half of attempt A")  # a first attempt, still writing somewhere
    with b.run_lock("r"):
        assert not a.partial_checkpoint("r").exists()  # under the lock: a dead attempt's leftover
        b.partial_checkpoint("r").write_bytes(b"attempt B, complete")
        a.partial_checkpoint("r").write_bytes(b"attempt A wakes up and writes")
        b.commit_training("r", {"model": "m"})
    assert store.checkpoint("r").read_bytes() == b"attempt B, complete"
    assert a.partial_checkpoint("r").read_bytes() == b"attempt A wakes up and writes"


def test_an_attempt_past_max_retries_does_not_start(tmp_path, monkeypatch):
    """Ray's out-of-memory retries have their own budget: the attempt count in the run folder caps them."""
    from dar_mmsa.benchmark.executors import ray_node
    from dar_mmsa.benchmark.grid import TrainingRun

    unit = SimpleNamespace(run=TrainingRun("misa", "mosi", 1111, "c" * 64, ()), args={}, data={})
    settings = SimpleNamespace(store=ResultStore(tmp_path))
    for _ in range(2):
        ray_node.count_attempt(settings.store, unit.run.run_id, "sub")
    monkeypatch.setattr(ray_node, "node_facts", lambda gpu: pytest.fail("the third attempt went on"))
    outcome = ray_node.run_unit_task(unit, settings, 1, os.getcwd(), "sub", 2, {})
    log = tmp_path / "logs" / f"{unit.run.run_id}.log"
    assert outcome.failure == (f"error: misa/mosi/seed 1111 failed (its worker died on each of 2 attempt(s) "
                               f"(--max-retries 1)); see {log}")
    assert "attempt 3 not started" in log.read_text()
    assert ray_node.forget_attempts(settings.store, unit.run.run_id, "sub") == [1, 2, 3]


def test_rays_out_of_memory_message_names_node_and_memory():
    from dar_mmsa.benchmark.executors.ray_backend import oom_cause

    message = ("Task was killed due to the node running low on memory.\nMemory on the node (IP: 10.0.0.7, ID: "
               "92edc4e97e4dac3cee61126133ee7ab6d0a2ee73803623d24a02979d) was 110.69GB / 124.35GB (0.890161), which "
               "exceeds the memory usage threshold 0.95.")
    assert oom_cause(Exception(message)) == ("out of memory on node 10.0.0.7 (92edc4e9): 110.69GB of 124.35GB in use "
                                             "when Ray's memory monitor killed it")
    assert oom_cause(Exception("worker killed\nmore")) == "out of memory: worker killed"


def test_deterministic_switches_torch_to_deterministic_kernels_without_tf32():
    code = ("import torch; from dar_mmsa.training.determinism import use_deterministic_torch; "
            "use_deterministic_torch(); import os; "
            "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(), "
            "torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, "
            "torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision(), "
            "os.environ['CUBLAS_WORKSPACE_CONFIG'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in dict(os.environ, OMP_NUM_THREADS="1").items()
                              if k != "CUBLAS_WORKSPACE_CONFIG"}).stdout.split()
    assert out[:7] == ["True", "True", "True", "False", "False", "False", "highest"]
    assert out[7] in (":4096:8", ":4096:2")  # cuBLAS's two deterministic workspaces (MMSA's import sets :4096:2)
