"""Private memory of N workers reading one cached MOSEI-shaped feature file, as a ratio to one copy.

Writes synthetic MOSEI (unaligned, ``--scale`` of the real sizes) under ``--work``, builds the
per-host feature cache once (``dar_mmsa.data.feature_cache``), then starts ``--workers`` processes
at once. Each maps the cache as a Ray worker does, does to the arrays what MMSA's dataset and our
padding hook do in place (``audio[audio == -inf] = 0``, the padding rule), reads every page, and
reports the pages it copied (``Anonymous`` in ``/proc/self/smaps`` for its maps of the cache files).

    ratio = (sum over workers of copied pages) / (bytes of the cached arrays)

0 means the pages live once per host whatever N; N would mean every worker holds its own copy.
Linux only (smaps).

    OMP_NUM_THREADS=1 python bench/shared_cache_memory.py --workers 4 --scale 0.2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_WORKER = r"""
import json, os, sys
from pathlib import Path
import numpy as np
from dar_mmsa.data.feature_cache import load_for_run, cache_folder
from dar_mmsa.data.padding import apply_padding

path, cache = sys.argv[1], sys.argv[2]
data = load_for_run(path, "mosei", aligned=False, padded=True)
for items in data.values():
    items["audio"][items["audio"] == -np.inf] = 0
    for m in ("audio", "vision"):
        apply_padding(items[m], items[m + "_lengths"])
    for value in items.values():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            float(value.sum())
folder = str(cache_folder(path, cache, padded=True))
copied, inside = 0, False
for line in Path("/proc/self/smaps").read_text().splitlines():
    fields = line.split()
    if fields and "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
        inside = len(fields) >= 6 and fields[5].startswith(folder)
    elif inside and fields[0] == "Anonymous:":
        copied += int(fields[1]) * 1024
print(json.dumps({"copied": copied}), flush=True)
sys.stdin.read()  # stay alive until every worker has measured
"""

_PREPARE = r"""
import sys
from dar_mmsa.data.synthetic import write_synthetic, feature_path
from dar_mmsa.data.feature_cache import open_cached
write_synthetic(sys.argv[1], datasets=("mosei",), scale=float(sys.argv[2]), seed=0)
path = feature_path(sys.argv[1], "mosei", aligned=False)
open_cached(path, "mosei", False, True, sys.argv[3], padded=True)
print(path)
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--scale", type=float, default=0.2, help="of the real MOSEI split sizes")
    parser.add_argument("--work", type=Path, default=None, help="folder for the data and the cache (default: a temporary one)")
    args = parser.parse_args(argv)
    if not Path("/proc/self/smaps").exists():
        print("shared cache memory: skipped (needs Linux /proc/self/smaps)")
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="shared_cache_memory."))
    cache = work / "cache"
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = subprocess.run([sys.executable, "-c", _PREPARE, str(work / "data"), str(args.scale), str(cache)],
                          check=True, capture_output=True, text=True, env=env).stdout.strip().splitlines()[-1]
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, path, str(cache)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=env) for _ in range(args.workers)]
    copied = [json.loads(w.stdout.readline())["copied"] for w in workers]
    for w in workers:
        w.communicate("")
    one_copy = sum(p.stat().st_size for p in cache.rglob("*.npy"))
    ratio = sum(copied) / one_copy
    print(f"shared cache memory: {args.workers} workers on synthetic MOSEI x{args.scale:g} "
          f"({one_copy / 2**20:.1f} MiB of cached arrays): copied {sum(copied) / 2**20:.2f} MiB in all, "
          f"ratio {ratio:.3f} of one copy (0: shared once per host; {args.workers}: a copy per worker)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
