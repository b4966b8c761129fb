"""run_benchmark.py: every user error is one line on stderr, exit code 2, no traceback, nothing lost.

Three error paths run the CLI in its own process (the exit code as a shell sees it); the others call
its ``main`` in this process -- the same code path, without paying the import time again.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import run_benchmark  # noqa: E402


def cli(*args):
    return [sys.executable, str(REPO / "run_benchmark.py"), "--no-progress", *map(str, args)]


@pytest.fixture
def env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    for key in ("DAR_MMSA_DATA_ROOT", "DAR_MMSA_PRETRAINED"):
        env.pop(key, None)
    return env


IN_PROCESS = ("unknown dataset", "rate outside [0, 1]", "missing pickle", "missing BERT")


def test_user_errors(tmp_path, synthetic_root, tiny_bert, env, capsys, monkeypatch):
    out = tmp_path / "results"
    empty_root = tmp_path / "empty"
    empty_root.mkdir()
    bad_root = tmp_path / "bad"
    (bad_root / "MOSI" / "Processed").mkdir(parents=True)
    (bad_root / "MOSI" / "Processed" / "unaligned_50.pkl").write_bytes(b"not a pickle")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    common = ["--models", "misa", "--seeds", "1111", "--rates", "0.0", "--device", "cpu", "--out", out]
    ok = ["--data-root", synthetic_root, "--pretrained", tiny_bert]
    cases = {
        "unknown model": (cli(*common, *ok, "--models", "nope"), "unknown model 'nope': runnable models are"),
        "unknown dataset": (cli(*common, *ok, "--datasets", "iemocap"),
                            "unknown dataset 'iemocap': choose one of mosi, mosei"),
        "rate outside [0, 1]": (cli(*common, *ok, "--rates", "0.2", "1.5"), "missing rate 1.5 is outside [0, 1]"),
        "missing pickle": (cli(*common, "--data-root", empty_root, "--pretrained", tiny_bert),
                           "feature file not found"),
        "malformed pickle": (cli(*common, "--data-root", bad_root, "--pretrained", tiny_bert), "cannot unpickle"),
        "missing BERT": (cli(*common, "--data-root", synthetic_root, "--pretrained", tmp_path / "no-bert"), "BERT"),
        "output not writable": (cli(*common, *ok, "--out", blocker / "results"), "is not writable"),
    }
    stored = {}
    for i, name in enumerate(cases):  # one results folder per case (they run in parallel), each with a result
        stored[name] = out / f"t{i}" / "store" / "runs" / "misa-mosi-1111-x" / "evals" / "intra-0.0.json"
        stored[name].parent.mkdir(parents=True)
        stored[name].write_text('{"kind": "evaluation"}\n')
        cases[name][0].extend(["--name", f"t{i}"])
    procs = {name: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for name, (command, _) in cases.items() if name not in IN_PROCESS}
    outcomes = {}
    for key in ("DAR_MMSA_DATA_ROOT", "DAR_MMSA_PRETRAINED"):
        monkeypatch.delenv(key, raising=False)
    for name in IN_PROCESS:
        capsys.readouterr()
        code = run_benchmark.main(cases[name][0][2:])
        outcomes[name] = (code, *capsys.readouterr())
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        outcomes[name] = (proc.returncode, stdout, stderr)
    assert set(outcomes) == set(cases)
    for name, (code, stdout, stderr) in outcomes.items():
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert code == 2, f"{name}: exit {code}\n{stderr[-2000:]}"
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{name}: {stderr[-2000:]}"
        assert cases[name][1] in lines[0], f"{name}: {lines[0]}"
        assert "Traceback" not in stderr + stdout
        assert stored[name].read_text() == '{"kind": "evaluation"}\n', f"{name}: a stored result was touched"
        left = {p.name for p in stored[name].parents[4].rglob("*") if p.is_file()}
        assert left <= {".lock", "intra-0.0.json"}, f"{name}: wrote {left}"
