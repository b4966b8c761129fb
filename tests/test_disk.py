"""A full disk, a damaged checkpoint, dropped checkpoints and incomplete rows (issue: nothing stored is
lost, and each says so in one line). A tiny registered model on synthetic MOSI keeps every run short."""
import errno
import os
from pathlib import Path

import pandas as pd
import pytest

from conftest import registered_test_model
import torch

import dar_mmsa
import run_benchmark
from dar_mmsa.benchmark import disk
from dar_mmsa.benchmark import store as store_module
from dar_mmsa.benchmark.aggregate import INCOMPLETE_MARK, incomplete_rows
from dar_mmsa.benchmark.grid import Condition
from dar_mmsa.benchmark.store import ResultStore
from dar_mmsa.errors import ConfigError

REPORTS = ("evaluations.csv", "per_rate.csv", "table1.csv", "table1.tex", "summary.txt")


class TinyModel(torch.nn.Module):
    """Two linear layers on the mean audio and vision features and the share of kept text tokens."""

    def __init__(self, args):
        super().__init__()
        width = args["feature_dims"][1] + args["feature_dims"][2] + 1
        self.hidden, self.head = torch.nn.Linear(width, 4), torch.nn.Linear(4, 1)

    def forward(self, text, audio, vision):
        kept = (text[:, 0] != 100).float().mean(dim=1, keepdim=True)
        x = torch.cat([audio.mean(dim=1), vision.mean(dim=1), kept], dim=1)
        return {"M": self.head(torch.tanh(self.hidden(x)))}


def tiny_bytes(args) -> int:
    """Hand count of TinyModel's checkpoint tensors: (width x 4 + 4) + (4 + 1) float32 values."""
    width = args["feature_dims"][1] + args["feature_dims"][2] + 1
    return (width * 4 + 4 + 4 + 1) * 4


@pytest.fixture
def tiny_config(tmp_path):
    yield from registered_test_model("disk_tiny", TinyModel, tmp_path / "config.json", learning_rate=1e-2,
                                     max_epochs=2, display="Tiny")


@pytest.fixture
def cli(tmp_path, tiny_config, synthetic_root, tiny_bert, capsys):
    """Runs run_benchmark.py in this process: returns (exit code, stdout, stderr lines)."""
    base = ["--no-progress", "--models", "disk_tiny", "--datasets", "mosi", "--seeds", "1111", "--rates", "0.0",
            "0.5", "--data-root", synthetic_root, "--pretrained", tiny_bert, "--device", "cpu", "--config",
            str(tiny_config), "--out", str(tmp_path / "out")]

    def main(argv):
        capsys.readouterr()
        code = run_benchmark.main(argv)
        captured = capsys.readouterr()
        return code, captured.out, [line for line in captured.err.splitlines() if line.strip()]

    def call(*extra, name="t"):
        return main([*base, "--name", name, *extra])

    call.report = lambda name="t": main(["--report-only", "--out", str(tmp_path / "out"), "--name", name])
    call.root = lambda name="t": tmp_path / "out" / name
    return call


def stored_metrics(root: Path) -> dict:
    store = ResultStore(root)
    return {(r["run_id"], r["condition"]["key"]): r["metrics"] for r in store.evaluations()}


def leftovers(root: Path) -> list:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(".tmp") or ".partial" in p.name)


class _HalfWriter:
    """A binary file whose first write stores half its bytes and then fails as a full disk does."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, data):
        self.handle.write(bytes(data)[: len(data) // 2])
        self.handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def fill_disk_at(monkeypatch, file_name: str) -> list:
    """Make the store's atomic write of ``file_name`` fail with ENOSPC half-way; returns the failed paths."""
    failed, targets = [], {}
    real_create, real_fdopen = store_module._create_temporary, os.fdopen

    def create_temporary(path):
        fd, tmp = real_create(path)
        targets[fd] = tmp
        return fd, tmp

    def fdopen(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        path = targets.pop(fd, "")
        if Path(path).name.startswith(f".{file_name}."):
            failed.append(path)
            return _HalfWriter(handle)
        return handle

    monkeypatch.setattr(store_module, "_create_temporary", create_temporary)
    monkeypatch.setattr(store_module.os, "fdopen", fdopen)
    return failed


def test_reference_run_is_complete(cli):
    code, out, err = cli(name="ref")
    assert code == 0, err
    assert leftovers(cli.root("ref")) == [] and len(stored_metrics(cli.root("ref"))) == 2
    (training,) = ResultStore(cli.root("ref")).trainings()
    checkpoint = ResultStore(cli.root("ref")).checkpoint(training["run_id"])
    assert {k: training["checkpoint"][k] for k in ("bytes", "sha256")} == store_module.file_digest(checkpoint)
    assert training["checkpoint"]["weights_sha256"] == store_module.weights_digest(checkpoint)
    assert training["checkpoint"]["bytes"] == checkpoint.stat().st_size > tiny_bytes(training["args"])
    assert INCOMPLETE_MARK not in out


@pytest.mark.parametrize("error", ["oserror", "torch-writer"])
def test_full_disk_at_the_checkpoint_write(cli, monkeypatch, error):
    real_save = torch.save

    def save(obj, path, *args, **kwargs):  # half a checkpoint reaches the disk, then the disk is full
        real_save(obj, path, *args, **kwargs)
        Path(path).write_bytes(Path(path).read_bytes()[:100])
        if error == "oserror":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 18048 vs 17942")

    monkeypatch.setattr(torch, "save", save)
    code, out, err = cli()
    assert code == 2 and out == "" and len(err) == 1, err
    assert err[0].startswith("error: could not write ") and "/model.partial." in err[0], err
    assert " free on its filesystem: free some space there and rerun the same command" in err[0]
    assert ("no space left on device" if error == "oserror" else "unexpected pos 18048") in err[0]
    assert leftovers(cli.root()) == []
    assert ResultStore(cli.root()).trainings() == []

    monkeypatch.setattr(torch, "save", real_save)
    assert cli()[0] == 0
    assert cli(name="ref")[0] == 0
    assert stored_metrics(cli.root()) == stored_metrics(cli.root("ref"))


def test_full_disk_at_an_evaluation_write(cli, monkeypatch):
    failed = fill_disk_at(monkeypatch, "intra-0.5.json")
    code, out, err = cli()
    assert code == 2 and len(err) == 1 and failed, err
    assert err[0].startswith("error: could not write ") and err[0].split()[4].endswith("evals/intra-0.5.json:")
    assert "no space left on device" in err[0] and "Traceback" not in out
    assert leftovers(cli.root()) == [] and not Path(failed[0]).exists()
    store = ResultStore(cli.root())
    (training,) = store.trainings()
    kept = stored_metrics(cli.root())
    assert list(kept) == [(training["run_id"], "intra-0.0")], "the evaluation stored before stays"

    monkeypatch.undo()
    code, out, err = cli()
    assert code == 0, err
    assert "0 training run(s) and 1 evaluation(s) done now" in out
    assert cli(name="ref")[0] == 0
    assert stored_metrics(cli.root()) == stored_metrics(cli.root("ref"))


def test_full_disk_at_a_report_write(cli, monkeypatch):
    fill_disk_at(monkeypatch, "table1.tex")
    code, out, err = cli()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: could not write {cli.root() / 'table1.tex'}: no space left on device; ")
    assert leftovers(cli.root()) == [] and not (cli.root() / "table1.tex").exists()
    assert len(stored_metrics(cli.root())) == 2, "the evaluations are stored before the reports"

    monkeypatch.undo()
    code, out, err = cli()
    assert code == 0 and "0 training run(s) and 0 evaluation(s) done now" in out
    assert all((cli.root() / name).is_file() for name in REPORTS)


def test_truncated_checkpoint_is_retrained_with_the_same_metrics(cli):
    assert cli()[0] == 0
    store = ResultStore(cli.root())
    (before,) = store.trainings()
    metrics = stored_metrics(cli.root())
    checkpoint = store.checkpoint(before["run_id"])
    checkpoint.write_bytes(checkpoint.read_bytes()[: before["checkpoint"]["bytes"] // 2])
    store.eval_path(before["run_id"], "intra-0.5").unlink()

    code, out, err = cli("--no-retrain")
    assert code == 2 and len(err) == 1 and str(store.run_dir(before["run_id"])) in err[0], err
    assert "is damaged" in err[0] and "remove the run folder" in err[0]

    code, out, err = cli()
    assert code == 0, err
    assert [line for line in err if line.startswith("note: the checkpoint")] == [
        next(line for line in err if "is damaged" in line)] and "retraining it" in err[0]
    (after,) = store.trainings()
    assert after["trainings"] == 2 and after["checkpoint"]["weights_sha256"] == before["checkpoint"]["weights_sha256"]
    assert after["training_id"] == before["training_id"], "a byte-identical checkpoint keeps its evaluations"
    assert "1 training run(s) and 1 evaluation(s) done now" in out
    assert stored_metrics(cli.root()) == metrics


def test_changed_checkpoint_bytes_are_caught_by_the_sha256(cli):
    assert cli()[0] == 0
    store = ResultStore(cli.root())
    (record,) = store.trainings()
    data = bytearray(store.checkpoint(record["run_id"]).read_bytes())
    data[-30] ^= 0xFF
    store.checkpoint(record["run_id"]).write_bytes(bytes(data))
    assert store.checkpoint_problem(record["run_id"], record, sha256=False) is None
    assert "sha256" in store.checkpoint_problem(record["run_id"], record)


def test_checkpoints_drop_keeps_every_report(cli):
    assert cli()[0] == 0
    root = cli.root()
    assert len(list(root.rglob("model.pth"))) == 1
    code, out, err = cli("--checkpoints", "drop")  # finished earlier: dropped before anything else runs
    assert code == 0, err
    assert list(root.rglob("*.pth")) == []
    assert "checkpoints dropped (--checkpoints drop): 1 run(s) keep their predictions, records and reports but " \
           "no model.pth, so load_run and new conditions need a retrain" in out
    (record,) = ResultStore(root).trainings()
    metrics = stored_metrics(root)
    assert record["checkpoint_dropped"] is True and len(metrics) == 2
    with pytest.raises(ConfigError, match=r"has no checkpoint: it was dropped \(--checkpoints drop\)"):
        dar_mmsa.load_run(ResultStore(root).run_dir(record["run_id"]))
    before = {name: (root / name).read_bytes() for name in REPORTS if name != "summary.txt"}
    for name in REPORTS:
        (root / name).unlink()

    code, out, err = cli.report()
    assert code == 0, err
    assert {name: (root / name).read_bytes() for name in before} == before
    assert (root / "summary.txt").is_file()

    code, out, err = cli("--rates", "0.0", "0.5", "0.9", "--checkpoints", "drop")  # a new condition retrains
    assert code == 0 and "1 training run(s) and 1 evaluation(s) done now" in out
    assert any("was dropped (--checkpoints drop): retraining it" in line for line in err), err
    assert list(root.rglob("*.pth")) == []
    after = stored_metrics(root)
    assert len(after) == 3 and {k: v for k, v in after.items() if k[1] != "intra-0.9"} == metrics


def test_free_space_check_refuses_a_grid_that_does_not_fit(cli, monkeypatch):
    sizes = {}
    real_bytes = disk.checkpoint_bytes
    monkeypatch.setattr(disk, "checkpoint_bytes", lambda args: sizes.setdefault("tiny", real_bytes(args)))
    monkeypatch.setattr(disk, "free_bytes", lambda path: 10)
    code, out, err = cli("--seeds", "1111", "1112", "--checkpoints", "drop")  # not even one fits
    assert code == 2 and len(err) == 1, err
    one = sizes["tiny"]
    assert err[0] == (f"error: the largest checkpoint of this grid needs about {disk.human_bytes(one)} but "
                      f"{cli.root()}'s filesystem has 10 B free: free some space or pass an --out with more room")

    monkeypatch.setattr(disk, "free_bytes", lambda path: 2 * one - 1)  # one fits, both do not
    code, out, err = cli("--seeds", "1111", "1112")
    assert code == 2 and len(err) == 1, err
    assert err[0] == (f"error: the 2 run(s) still to train need about {disk.human_bytes(2 * one)} for their "
                      f"checkpoints but {cli.root()}'s filesystem has {disk.human_bytes(2 * one - 1)} free: free "
                      f"some space, pass an --out with more room, or add --checkpoints drop (each checkpoint "
                      f"deleted once its run is evaluated)")
    assert ResultStore(cli.root()).trainings() == []

    code, out, err = cli("--seeds", "1111", "1112", "--checkpoints", "drop")
    assert code == 0, err
    assert len(ResultStore(cli.root()).trainings()) == 2 and list(cli.root().rglob("*.pth")) == []


def test_checkpoint_bytes_is_the_parameter_count_times_the_dtype_size(tiny_config, synthetic_root, tiny_bert):
    from dar_mmsa import runner

    args = runner.build_args("disk_tiny", "mosi", config_file=tiny_config, data_root=synthetic_root,
                             pretrained=tiny_bert, device="cpu")
    assert disk.checkpoint_bytes(args) == tiny_bytes(args)
    half = torch.nn.Linear(3, 2).to(torch.float16)
    assert disk.state_dict_bytes(half) == (3 * 2 + 2) * 2


def test_write_failure_reads_the_cause():
    assert disk.write_failure(OSError(errno.EDQUOT, "quota")) == "disk quota exceeded"
    assert disk.write_failure(OSError(errno.EACCES, "denied")) is None
    try:
        try:
            raise OSError(errno.ENOSPC, "full")
        except OSError as exc:
            raise ValueError("wrapped") from exc
    except ValueError as exc:
        assert disk.write_failure(exc) == "no space left on device"
    assert disk.write_failure(RuntimeError("shape mismatch")) is None
    assert disk.human_bytes(440_000_000) == "440.0 MB" and disk.human_bytes(999) == "999 B"


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_get_the_mode_the_umask_gives_new_files(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        store_module.write_atomic(tmp_path / "runs" / "r" / "training.json", b"{}")
    finally:
        os.umask(previous)
    written = tmp_path / "runs" / "r" / "training.json"
    assert written.read_bytes() == b"{}" and written.stat().st_mode & 0o777 == mode
    assert [p.name for p in written.parent.iterdir()] == ["training.json"]  # no temporary left


def test_console_marks_an_incomplete_row(cli):
    assert cli("--seeds", "1111", "1112")[0] == 0
    store = ResultStore(cli.root())
    seed_1112 = next(r for r in store.trainings() if r["seed"] == 1112)
    store.eval_path(seed_1112["run_id"], "intra-0.5").unlink()
    code, out, err = cli.report()
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("mosi ") and "Tiny" in line)
    assert f"Tiny {INCOMPLETE_MARK}" in row
    assert f"{INCOMPLETE_MARK} Tiny on mosi: averaged over 2 of 2 conditions and 1 of 2 seeds; " \
           f"seed 1112 missing at 0.5" in out


def test_incomplete_rows_name_what_is_missing():
    per_cond = pd.DataFrame({"dataset": ["mosi"] * 3 + ["mosei"], "model": ["a", "a", "b", "a"],
                             "protocol": ["intra"] * 4, "condition": ["intra-0.0", "intra-0.5", "intra-0.0",
                                                                      "intra-0.0"],
                             "seeds": ["1 2", "1", "1 2", "1 2"], "n_seeds": [2, 1, 2, 2]})
    conditions = [Condition.intra(0.0), Condition.intra(0.5), Condition.subset((True, False, False))]
    assert incomplete_rows(per_cond, conditions, [1, 2]) == {
        ("mosi", "a"): "averaged over 2 of 2 conditions and 1 of 2 seeds; seed 2 missing at 0.5",
        ("mosi", "b"): "averaged over 1 of 2 conditions and 2 of 2 seeds; no evaluation at 0.5",
        ("mosei", "a"): "averaged over 1 of 2 conditions and 2 of 2 seeds; no evaluation at 0.5"}
    assert incomplete_rows(per_cond[per_cond["model"] == "a"].iloc[:2], conditions[:2], [1]) == {}
