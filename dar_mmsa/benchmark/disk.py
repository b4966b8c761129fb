"""Disk space of a results folder: full-disk errors as one line, and the checkpoint budget of a grid.

A full disk (``ENOSPC``, or ``EDQUOT`` over a quota) is a normal event for a benchmark that keeps one
BERT-sized checkpoint per run. Every write of the store goes through :func:`writing` (``write_atomic``
does, and so does the training of a unit around the trainer's ``torch.save``), which removes the
partial file and raises :class:`DiskFull`: one line naming the file, the free space left and the fix.
Torch's checkpoint writer does not raise ``OSError`` on a full disk but a ``RuntimeError`` from its
zip writer (``unexpected pos ...``, ``file write failed``); that counts as a failed write too.

Before training, :func:`check_budget` compares the checkpoint bytes of the runs still to train
(each model's state-dict bytes: parameter count x dtype size, buffers included) with the free
space of the results folder's filesystem.
"""
from __future__ import annotations

import contextlib
import errno
import io
import shutil
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Sequence

import torch

from ..errors import DarMmsaError, StorageError

FULL_DISK_ERRNOS = {code: text for code, text in ((errno.ENOSPC, "no space left on device"),
                                                   (getattr(errno, "EDQUOT", None), "disk quota exceeded")) if code}
TORCH_WRITER_FAILURES = ("unexpected pos", "file write failed", "PytorchStreamWriter failed writing")


def free_bytes(path) -> int:
    """Free bytes (for this user) on the filesystem holding ``path`` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def write_failure(exc: BaseException) -> Optional[str]:
    """Why a write failed for lack of space (``exc`` or an exception it was raised from), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in FULL_DISK_ERRNOS:
            return FULL_DISK_ERRNOS[exc.errno]
        if isinstance(exc, RuntimeError) and any(s in str(exc) for s in TORCH_WRITER_FAILURES):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return f"torch's writer stopped ({' '.join(first.split())[:120]}), as on a full disk"
        exc = exc.__cause__ if exc.__cause__ is not None else None if exc.__suppress_context__ else exc.__context__
    return None


class DiskFull(StorageError):
    """A write failed for lack of space; the message names the file, the free space and the fix.

    The free space is measured when the message is read: a failed writer can hold its removed file
    open (torch's does, from the exception it raised) until that exception is released.
    """

    def __init__(self, path, reason: str):
        super().__init__(str(path), reason)
        self.path, self.reason = Path(path), reason

    def __str__(self) -> str:
        return (f"could not write {self.path}: {self.reason}; {human_bytes(free_bytes(self.path))} free on its "
                f"filesystem: free some space there and rerun the same command (everything stored so far is "
                f"kept and the grid resumes)")


@contextlib.contextmanager
def writing(path, *, remove: bool = False) -> Iterator[None]:
    """Turn a full-disk error inside the block into :class:`DiskFull` naming ``path`` (removed first
    with ``remove``: a partial file the block was writing). A :class:`DiskFull` raised deeper keeps
    the file it names, and any other one-line error passes unchanged."""
    try:
        yield
    except DarMmsaError:
        raise
    except Exception as exc:
        reason = write_failure(exc)
        if reason is None:
            raise
        if remove:
            Path(path).unlink(missing_ok=True)
        raise DiskFull(getattr(exc, "filename", None) or path, reason) from exc


def remove_temporary_files(folder) -> list:
    """Delete the temporary files (``.<name>.tmp``) a failed report write left directly in ``folder``;
    returns their paths."""
    removed = sorted(Path(folder).glob(".*.tmp"))
    for tmp in removed:
        tmp.unlink(missing_ok=True)
    return removed


@contextlib.contextmanager
def writing_reports(folder) -> Iterator[None]:
    """:func:`writing` for the reports of ``folder``: a full disk names the file (else the folder)
    and leaves no temporary report file behind."""
    try:
        with writing(folder):
            yield
    except DiskFull as exc:
        removed = remove_temporary_files(folder)
        if exc.path == Path(folder) and len(removed) == 1:  # a writer that does not say its file (matplotlib)
            raise DiskFull(removed[0].with_name(removed[0].name[1:-len(".tmp")]), exc.reason) from None
        raise


# ---------------------------------------------------------------------- checkpoint budget
def state_dict_bytes(model: torch.nn.Module) -> int:
    """Bytes of the tensors a checkpoint of ``model`` holds (shared storages counted once)."""
    seen, total = set(), 0
    for tensor in model.state_dict().values():
        storage = tensor.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if key not in seen:
            seen.add(key)
            total += tensor.numel() * tensor.element_size()
    return total


def checkpoint_bytes(args) -> Optional[int]:
    """The checkpoint bytes of the model ``args`` build (built once on the CPU, RNG untouched), or
    None when it cannot be built without its data (the budget then leaves it out)."""
    from .. import runner

    kind = type(args)  # MMSA's models read an EasyDict's attributes
    args = kind({**args, "device": torch.device("cpu")})
    with torch.random.fork_rng(devices=[]), contextlib.redirect_stderr(io.StringIO()):
        for attempt in (args, kind({k: v for k, v in args.items() if k != "seq_lens"})):
            try:
                return state_dict_bytes(runner.build_model(attempt))
            except Exception:  # e.g. sequence lengths only the data loader sets
                continue
    return None


def units_to_train(store, units: Sequence) -> list:
    """The units that will train: pending conditions and no usable stored checkpoint (cheap checks:
    record, file, size; the sha256 is checked when the unit runs)."""
    from .execute import pending_conditions

    out = []
    for unit in units:
        if not pending_conditions(store, unit.run):
            continue
        record = store.training(unit.run.run_id)
        if record is None or store.checkpoint_problem(unit.run.run_id, record, sha256=False):
            out.append(unit)
    return out


def check_budget(store, units: Sequence, *, checkpoints: str, say: Callable[[str], None],
                 sizes: Optional[Dict[tuple, Optional[int]]] = None) -> int:
    """Refuse (one line) a grid whose checkpoints do not fit on the results folder's filesystem.

    ``keep``: every run still to train keeps its checkpoint, so their sum must fit. ``drop``: a
    checkpoint is deleted once its run is evaluated, so the largest one must fit. Returns the bytes
    needed (0 when nothing trains).
    """
    todo = units_to_train(store, units)
    if not todo:
        return 0
    sizes = {} if sizes is None else sizes
    per_unit = []
    for unit in todo:
        key = (unit.run.model, unit.run.dataset, unit.run.config_hash)
        if key not in sizes:
            sizes[key] = checkpoint_bytes(unit.args)
        per_unit.append(sizes[key])
    unknown = sorted({u.run.model for u, n in zip(todo, per_unit) if n is None})
    if unknown:
        say(f"note: the checkpoint size of {', '.join(unknown)} is left out of the disk estimate (its model "
            f"cannot be built before its data are loaded)")
    known = [n for n in per_unit if n is not None]
    largest = max(known, default=0)
    need = largest if checkpoints == "drop" else sum(known)
    free = free_bytes(store.root)
    if need <= free:
        return need
    if checkpoints == "drop" or largest > free:
        raise StorageError(f"the largest checkpoint of this grid needs about {human_bytes(largest)} but "
                           f"{store.root}'s filesystem has {human_bytes(free)} free: free some space or "
                           f"pass an --out with more room")
    raise StorageError(f"the {len(todo)} run(s) still to train need about {human_bytes(need)} for their "
                       f"checkpoints but {store.root}'s filesystem has {human_bytes(free)} free: free some "
                       f"space, pass an --out with more room, or add --checkpoints drop (each checkpoint "
                       f"deleted once its run is evaluated)")
