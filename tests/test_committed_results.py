"""Committed results folders that keep their store are rebuilt byte for byte by ``--report-only``."""
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import run_benchmark  # noqa: E402

WITH_STORE = sorted(p.parent.parent for p in (REPO / "results").glob("*/store/runs"))


def _tables(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix in (".csv", ".tex")}


def test_some_committed_folder_keeps_its_store():
    assert REPO / "results" / "synthetic-quick" in WITH_STORE


@pytest.mark.parametrize("folder", WITH_STORE, ids=[p.name for p in WITH_STORE])
def test_report_only_rebuilds_the_committed_tables(folder, tmp_path, capsys):
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    committed = _tables(folder)
    for name in committed:
        (copy / name).unlink()
    assert run_benchmark.main(["--report-only", "--out", str(tmp_path), "--name", folder.name, "--no-progress"]) == 0
    assert _tables(copy) == committed
