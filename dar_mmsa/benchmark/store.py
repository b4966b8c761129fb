"""The results store: one small JSON file per finished evaluation, written atomically.

Layout under ``results/<name>/store/``::

    runs/<run_id>/training.json        what was trained, when, how often (``trainings``)
    runs/<run_id>/model.pth            its best checkpoint (validation loss)
    runs/<run_id>/model.partial.pth    the trainer's checkpoint while training is in progress
    runs/<run_id>/evals/<condition>.json   one evaluation: metrics, wall time, versions, data

Every file is written to a temporary name in the same directory, flushed, fsync'ed and then
``os.replace``'d into place, so a reader sees either the old file, the complete new one, or
nothing -- never half a file. A run killed at any moment loses at most the evaluation (or the
training) in flight. A training counts as finished only when both ``model.pth`` and
``training.json`` exist (the checkpoint is moved into place first). Evaluations carry the
``training_id`` of the checkpoint they evaluated; those of an older training of the same run are
ignored (and redone). The reader skips temporary files and any file it cannot parse.

One driver at a time per results folder: :meth:`ResultStore.lock` takes an exclusive lock. Under
it, units may run concurrently in other processes or on other machines (``executors``): each
writes only its own run's files (``runs/<run_id>/``, ``logs/<run_id>.log``, per-run outputs) while
holding :meth:`ResultStore.run_lock`, so two attempts of one run never write at once, and every
file still lands atomically. Temporary names are unique per writer (``mkstemp``). On a cluster the
folder must be on storage every node mounts; the Ray executor checks that before it starts.
"""
from __future__ import annotations

import json
import os
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

from ..errors import ConfigError

SCHEMA_VERSION = 1


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file + fsync + ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def write_json(path: Path, obj) -> None:
    write_atomic(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Optional[dict]:
    """The parsed file, or None if it is missing or not a complete JSON object."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ResultStore:
    def __init__(self, root):
        self.root = Path(root)
        self.runs = self.root / "store" / "runs"

    # ------------------------------------------------------------------ paths
    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id

    def checkpoint(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "model.pth"

    def partial_checkpoint(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "model.partial.pth"

    def eval_path(self, run_id: str, condition_key: str) -> Path:
        return self.run_dir(run_id) / "evals" / f"{condition_key}.json"

    # ------------------------------------------------------------------ trainings
    def training(self, run_id: str) -> Optional[dict]:
        """The training record if the training finished (record and checkpoint both there)."""
        record = read_json(self.run_dir(run_id) / "training.json")
        return record if record is not None and self.checkpoint(run_id).is_file() else None

    def commit_training(self, run_id: str, record: dict) -> dict:
        """Move the finished checkpoint into place, then write the record; returns the record."""
        previous = read_json(self.run_dir(run_id) / "training.json") or {}
        record = dict(record, schema=SCHEMA_VERSION, kind="training", run_id=run_id,
                      training_id=uuid.uuid4().hex, trainings=int(previous.get("trainings", 0)) + 1)
        os.replace(self.partial_checkpoint(run_id), self.checkpoint(run_id))
        _fsync_directory(self.run_dir(run_id))
        write_json(self.run_dir(run_id) / "training.json", record)
        return record

    def trainings(self) -> List[dict]:
        return [r for r in (read_json(p) for p in sorted(self.runs.glob("*/training.json"))) if r]

    # ------------------------------------------------------------------ evaluations
    def evaluation(self, run_id: str, condition_key: str, training_id: str) -> Optional[dict]:
        """The stored evaluation of this checkpoint under this condition, if any."""
        record = read_json(self.eval_path(run_id, condition_key))
        return record if record is not None and record.get("training_id") == training_id else None

    def write_evaluation(self, run_id: str, condition_key: str, record: dict) -> None:
        write_json(self.eval_path(run_id, condition_key), dict(record, schema=SCHEMA_VERSION, kind="evaluation"))

    def evaluations(self) -> Iterator[dict]:
        """Every current evaluation in the store (those of a superseded training left out)."""
        for training in self.trainings():
            for path in sorted((self.run_dir(training["run_id"]) / "evals").glob("*.json")):
                record = read_json(path)
                if record is not None and record.get("training_id") == training["training_id"]:
                    yield record

    # ------------------------------------------------------------------ access
    def check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"output directory {self.root} is not writable ({exc.strerror or exc}): "
                              f"pass a writable --out") from None

    @contextmanager
    def run_lock(self, run_id: str, waiting=None):
        """Hold the lock of one run while writing its files; waits for another holder (a retried
        unit whose earlier attempt is still shutting down), telling ``waiting`` once."""
        directory = self.run_dir(run_id)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".lock", "a") as handle:
            try:
                import fcntl
            except ImportError:  # not on POSIX: no lock
                yield
                return
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                if waiting is not None:
                    waiting(f"waiting for another process writing run {run_id} to finish\n")
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    @contextmanager
    def lock(self):
        """Hold an exclusive lock on the results folder (one benchmark process at a time)."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / ".lock", "a")
        try:
            try:
                import fcntl

                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # not on POSIX: no lock, as before
                pass
            except OSError:
                raise ConfigError(f"another benchmark is writing to {self.root}: wait for it or pass "
                                  f"another --name") from None
            yield self
        finally:
            handle.close()
