"""File locks of the results folder (``flock``), as they behave on cluster filesystems.

* A lock that another process holds is told apart from a filesystem that cannot lock at all
  (``ENOLCK``: NFSv3 without lockd; ``EOPNOTSUPP``/``ENOSYS``/``EINVAL``: no lock support): the
  second is :class:`LocksUnsupported`, reported as what it is, with the way out.
* Waiting for a lock has a limit (:func:`acquire`), after which :class:`LockTimeout` names the holder.
* Whoever holds a lock writes who it is into the lock file (host, pid, attempt, since): a lock
  that is never released (a node lost while holding it) can be traced and removed by hand.
* :func:`probe_coherent` (run on every node by the Ray executor while the driver holds the folder's
  lock) finds mounts where ``flock`` is node-local (NFS ``local_lock``, BeeGFS, Lustre
  ``localflock``): there a second node takes a lock the driver holds, and two attempts of one
  run could write at once.

Not on POSIX (no ``fcntl``): no locks, as before.
"""
from __future__ import annotations

import datetime
import errno
import json
import os
import socket
import time
from typing import Optional

from ..errors import ConfigError

try:
    import fcntl
except ImportError:  # not on POSIX
    fcntl = None

HELD = {errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES}
POLL_S = 0.5
LOCKS_WAY_OUT = ("put --out on storage with working cluster-wide locks (a local disk for one machine; NFSv4, or "
                 "NFSv3 with lockd, mounted without local_lock; Lustre with -o flock; BeeGFS with "
                 "tuneUseGlobalFileLocks) -- see 'Locks' in docs/benchmark.md")


class LockError(ConfigError):
    """A lock of the results folder cannot be taken (one line: what happened and what to do)."""


class LocksUnsupported(LockError):
    """The filesystem refuses locks altogether."""


class LockTimeout(LockError):
    """Another process held the lock for longer than the wait allows."""


def unsupported(path, exc: OSError) -> LocksUnsupported:
    name = errno.errorcode.get(exc.errno, str(exc.errno))
    return LocksUnsupported(f"cannot lock {path} ({name}: {exc.strerror or exc}): the filesystem has no working "
                            f"file locks; {LOCKS_WAY_OUT}")


def try_lock(handle, path) -> bool:
    """Take the exclusive lock of the open file ``handle`` without waiting: True if taken, False if
    another process holds it; :class:`LocksUnsupported` for any other error."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in HELD:
            return False
        raise unsupported(path, exc) from None


def acquire(handle, path, *, timeout_s: Optional[float], waiting=None, what: str = "") -> None:
    """Take the lock, waiting at most ``timeout_s`` seconds (None: forever) for its holder,
    telling ``waiting`` once; :class:`LockTimeout` after that, naming the holder."""
    if try_lock(handle, path):
        return
    if waiting is not None:
        waiting(f"waiting for {holder_of(path)} to release {what or path}\n")
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while not try_lock(handle, path):
        if deadline is not None and time.monotonic() >= deadline:
            raise LockTimeout(f"{what or path} stayed locked by {holder_of(path)} for {timeout_s:g}s: if that "
                              f"process is gone (its node lost), remove {path} and rerun")
        time.sleep(POLL_S)


def record_holder(handle, attempt: str = "") -> None:
    """Write who holds the lock into its (locked) file."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "attempt": attempt, "since": now}
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(holder) + "\n")
    handle.flush()


def holder_of(path) -> str:
    """Who last recorded holding the lock at ``path``, in words."""
    try:
        holder = json.loads(open(path).read() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not isinstance(holder, dict) or "host" not in holder:
        return "another process"
    attempt = f", attempt {holder['attempt']}" if holder.get("attempt") else ""
    return f"host {holder['host']} (pid {holder.get('pid')}{attempt}, since {holder.get('since')})"


def probe_coherent(path) -> Optional[str]:
    """On a node, while another process (the driver) holds the lock at ``path``: None if this node
    sees it held; else why locks here cannot keep two writers apart."""
    if fcntl is None:
        return None
    try:
        with open(path, "a") as handle:
            try:
                taken = try_lock(handle, path)
            except LocksUnsupported as exc:
                return str(exc)
            if taken:
                fcntl.flock(handle, fcntl.LOCK_UN)
                return (f"this node could take the lock on {path} that the driver holds: flock is local to each "
                        f"node on this mount (e.g. NFS local_lock, BeeGFS, Lustre localflock), so two attempts of "
                        f"a run could write at once; {LOCKS_WAY_OUT}")
    except OSError as exc:
        return f"cannot open {path} ({exc.strerror or exc})"
    return None
