"""Keep a long benchmark process from holding memory it has freed (glibc only; a no-op elsewhere).

glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MiB), so
after the data are loaded, every batch tensor and per-sample copy of a few hundred KiB comes from
the heap, whose freed pieces are kept for reuse and rarely returned: on synthetic MOSEI a MISA
training grew by ~1.7x the pickle that way (bench/memory.py). A fixed threshold keeps those
blocks mmap'ed, given back as soon as they are freed. Results do not depend on it.
"""
from __future__ import annotations

import ctypes
import ctypes.util

_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 16


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def bound_heap() -> bool:
    """Fix glibc's mmap threshold at ``MMAP_THRESHOLD`` for this process; True if it applied."""
    libc = _libc()
    return bool(libc and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def trim_heap() -> None:
    """Return the free memory at the top of glibc's heaps to the system."""
    libc = _libc()
    if libc:
        libc.malloc_trim(0)
