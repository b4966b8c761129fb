"""Give freed memory back to the system between runs (glibc only; a no-op elsewhere).

glibc's malloc keeps freed blocks for reuse. Between two runs of one process (``LoaderCache.clear``)
the previous data set and its batches are gone, so the free pages are returned with ``malloc_trim``.

Inside a run glibc keeps its own dynamic mmap threshold. Fixing it low (64 KiB, so that every freed
batch tensor is unmapped at once) bounded MISA's heap growth on MOSEI-shaped data (a full epoch at
scale 0.04: 0.93 GB instead of 1.38 GB) but made every large activation a fresh mapping whose pages
the kernel zeroes again: one DAR training step (batch 64, MOSI shapes, one thread) took 3.8 s of
system time on top of 5.1 s of user time, against 0.5 s with glibc's default (docs/benchmark.md,
"Memory"). Speed won; results never depended on it.
"""
from __future__ import annotations

import ctypes
import ctypes.util


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def trim_heap() -> None:
    """Return the free memory at the top of glibc's heaps to the system."""
    libc = _libc()
    if libc:
        libc.malloc_trim(0)
