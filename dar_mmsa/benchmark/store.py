"""The results store: one small JSON file per finished evaluation, written atomically.

Layout under ``results/<name>/store/``::

    runs/<run_id>/training.json        what was trained, when, how often (``trainings``), and the
                                       size and sha256 of its checkpoint (``checkpoint``)
    runs/<run_id>/model.pth            its best checkpoint (validation loss)
    runs/<run_id>/model.partial.<attempt>.pth   the trainer's checkpoint while one attempt trains
    runs/<run_id>/evals/<condition>.json   one evaluation: metrics, wall time, versions, data

Every file is written to a temporary name in the same directory, flushed, fsync'ed and then
``os.replace``'d into place, so a reader sees either the old file, the complete new one, or
nothing -- never half a file. A run killed at any moment loses at most the evaluation (or the
training) in flight. A training counts as finished only when both ``model.pth`` and
``training.json`` exist (the checkpoint is moved into place first). Evaluations carry the
``training_id`` of the checkpoint they evaluated; those of an older training of the same run are
ignored (and redone). The reader skips temporary files and any file it cannot parse.

A checkpoint is checked against the size and sha256 in its record before it is used
(:meth:`ResultStore.checkpoint_problem`). A retraining that reproduces the recorded weights exactly
(deterministic training on CPU) keeps its ``training_id``, so its stored evaluations stay current
(compared on the tensors, ``weights_sha256``, as torch stores the file's name inside the file).
``--checkpoints drop`` deletes a finished run's checkpoint (:meth:`ResultStore.drop_checkpoint`)
and keeps its record and evaluations. A write that fails for lack of space raises ``disk.DiskFull``
(one line) and leaves no temporary file.

One driver at a time per results folder: :meth:`ResultStore.lock` takes an exclusive lock. Under
it, units may run concurrently in other processes or on other machines (``executors``): each
writes only its own run's files (``runs/<run_id>/``, ``logs/<run_id>.log``, per-run outputs) while
holding :meth:`ResultStore.run_lock` (which records its holder and waits for it at most
``RUN_LOCK_WAIT_S``; ``locks``), so two attempts of one run never write at once, and every
file still lands atomically. Each attempt trains into its own partial checkpoint (``attempt``). Temporary names are unique per writer (a random suffix, created exclusively). On a cluster the
folder must be on storage every node mounts; the Ray executor checks that before it starts.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

from ..errors import ConfigError
from .disk import writing

SCHEMA_VERSION = 1


def _create_temporary(path: Path):
    """(fd, name) of a new, uniquely named file beside ``path``, with the mode any new file of the
    user gets (0o666 less the umask, so a group or web server can read the results; ``mkstemp``
    would make every result private)."""
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    return fd, str(tmp)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file + fsync + ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with writing(path):
        fd, tmp = _create_temporary(path)
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


def file_digest(path: Path) -> dict:
    """``{"bytes": size, "sha256": hex digest}`` of a file, read in 1 MiB blocks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
            size += len(block)
    return {"bytes": size, "sha256": digest.hexdigest()}


def weights_digest(path: Path) -> Optional[str]:
    """sha256 of a checkpoint's tensors (names, dtypes, shapes, values), or None if it is not a
    state dict. Unlike the file's bytes it does not depend on the file name torch stores inside."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return None
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


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


RUN_LOCK_WAIT_S = 900.0  # a retried unit waits this long for its earlier attempt to let go of the run


def attempt_label(number: Optional[int] = None) -> str:
    """A name for one attempt at a unit, unique across hosts: ``<host>-<pid>[-a<number>]-<random>``."""
    import socket

    tail = f"-a{number}" if number is not None else ""
    return f"{socket.gethostname()}-{os.getpid()}{tail}-{uuid.uuid4().hex[:6]}"


class ResultStore:
    def __init__(self, root, attempt: str = ""):
        self.root = Path(root)
        self.runs = self.root / "store" / "runs"
        self.attempt = attempt  # set in the process running a unit: names its partial checkpoint and locks

    def for_attempt(self, attempt: str) -> "ResultStore":
        """The same store, as seen by one attempt at a unit (:func:`attempt_label`)."""
        return ResultStore(self.root, attempt)

    # ------------------------------------------------------------------ paths
    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id

    def checkpoint(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "model.pth"

    def partial_checkpoint(self, run_id: str) -> Path:
        """The trainer's checkpoint while training: one name per attempt, so that two attempts of a run
        never write the same file and the one committed is the committing attempt's own."""
        suffix = f".{self.attempt}" if self.attempt else ""
        return self.run_dir(run_id) / f"model.partial{suffix}.pth"

    def eval_path(self, run_id: str, condition_key: str) -> Path:
        return self.run_dir(run_id) / "evals" / f"{condition_key}.json"

    # ------------------------------------------------------------------ trainings
    def training(self, run_id: str) -> Optional[dict]:
        """The training record if the training finished (the record is written after its checkpoint
        is in place; whether that checkpoint is still usable is :meth:`checkpoint_problem`'s job)."""
        return read_json(self.run_dir(run_id) / "training.json")

    def commit_training(self, run_id: str, record: dict) -> dict:
        """Move the finished checkpoint into place, then write the record; returns the record."""
        previous = read_json(self.run_dir(run_id) / "training.json") or {}
        checkpoint = dict(file_digest(self.partial_checkpoint(run_id)),
                          weights_sha256=weights_digest(self.partial_checkpoint(run_id)))
        same = (checkpoint["weights_sha256"] is not None and "training_id" in previous
                and checkpoint["weights_sha256"] == (previous.get("checkpoint") or {}).get("weights_sha256"))
        record = dict(record, schema=SCHEMA_VERSION, kind="training", run_id=run_id, checkpoint=checkpoint,
                      training_id=previous["training_id"] if same else uuid.uuid4().hex,
                      trainings=int(previous.get("trainings", 0)) + 1)
        os.replace(self.partial_checkpoint(run_id), self.checkpoint(run_id))
        _fsync_directory(self.run_dir(run_id))
        write_json(self.run_dir(run_id) / "training.json", record)
        return record

    def checkpoint_problem(self, run_id: str, record: dict, *, sha256: bool = True) -> Optional[str]:
        """What is wrong with the run's checkpoint (missing, dropped, size or sha256 unlike its
        record's), or None if it can be used; ``sha256=False`` skips reading the file."""
        path, expected = self.checkpoint(run_id), record.get("checkpoint") or {}
        if not path.is_file():
            return "was dropped (--checkpoints drop)" if record.get("checkpoint_dropped") else "is missing"
        if "bytes" in expected and path.stat().st_size != expected["bytes"]:
            return f"is damaged ({path.stat().st_size} bytes, its training record says {expected['bytes']})"
        if sha256 and "sha256" in expected and file_digest(path)["sha256"] != expected["sha256"]:
            return "is damaged (its sha256 differs from its training record's)"
        return None

    def drop_checkpoint(self, run_id: str) -> bool:
        """Delete a finished run's checkpoint, keeping its record (marked) and evaluations; True if one was deleted."""
        record = self.training(run_id)
        if record is None or not self.checkpoint(run_id).is_file():
            return False
        write_json(self.run_dir(run_id) / "training.json", dict(record, checkpoint_dropped=True))
        self.checkpoint(run_id).unlink()
        return True

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
    def run_lock(self, run_id: str, waiting=None, timeout_s: Optional[float] = RUN_LOCK_WAIT_S):
        """Hold the lock of one run while writing its files, recording this attempt as its holder;
        waits up to ``timeout_s`` for another holder (a retried unit whose earlier attempt is still
        shutting down), telling ``waiting`` once (``locks.LockTimeout`` after that). Under the lock,
        partial checkpoints of other attempts are leftovers of dead ones and are removed."""
        from . import locks

        directory = self.run_dir(run_id)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".lock", "a") as handle:
            locks.acquire(handle, directory / ".lock", timeout_s=timeout_s, waiting=waiting,
                          what=f"run {run_id}")
            locks.record_holder(handle, self.attempt)
            for stale in directory.glob("model.partial*.pth"):
                if stale != self.partial_checkpoint(run_id):
                    stale.unlink(missing_ok=True)
            yield

    @contextmanager
    def lock(self):
        """Hold an exclusive lock on the results folder (one benchmark process at a time)."""
        self.root.mkdir(parents=True, exist_ok=True)
        from . import locks

        path = self.root / ".lock"
        handle = open(path, "a")
        try:
            if not locks.try_lock(handle, path):  # a filesystem without locks raises LocksUnsupported
                raise locks.LockError(f"another benchmark is writing to {self.root} ({locks.holder_of(path)}): "
                                      f"wait for it or pass another --name")
            locks.record_holder(handle, "driver")
            yield self
        finally:
            handle.close()
