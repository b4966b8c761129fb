"""Peak memory of one benchmark run on synthetic MOSEI, as a ratio to the pickle it reads.

For each scale and model: one training (the smoke settings, ``--smoke``: tiny 1-layer BERT, ``max_epochs`` 2,
batch size 16, seed 1111) and its 10-rate intra-modal evaluation (rates 0.0 .. 0.9), through
``dar_mmsa.benchmark.run`` in a fresh process whose peak RSS is read from ``wait4``. The floor is
the peak RSS of a process that only imports ``dar_mmsa`` and torch, measured on the same machine by the same invocation.

    ratio = (peak RSS of the run - peak RSS of the import) / size of the unaligned MOSEI pickle

``--batches N`` stops every pass over a loader after N batches: loading, validation, the
datasets and the damaged test copies are still full size (they are what scales with the data),
only the repeated forward/backward passes are cut.

The data are written once per scale (in their own process, not measured) under ``--work``;
``--repo`` picks the checkout whose ``dar_mmsa`` is measured (e.g. a worktree of an older commit
for "before" figures).

    OMP_NUM_THREADS=1 python bench/memory.py --scales 0.1 0.3 --models misa dar
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_IMPORT = "import torch, dar_mmsa"
_WRITE = """
import sys
from dar_mmsa.data.synthetic import write_synthetic
write_synthetic(sys.argv[1], datasets=("mosei",), scale=float(sys.argv[2]), seed=0)
"""
_RUN = """
import itertools, json, sys
import torch
torch.set_num_threads(1)
if int(sys.argv[4]):  # --batches: every pass over a loader stops after that many batches
    from torch.utils.data import DataLoader
    _iter = DataLoader.__iter__
    DataLoader.__iter__ = lambda self: itertools.islice(_iter(self), int(sys.argv[4]))
from dar_mmsa.benchmark import run
result = run(models=[sys.argv[1]], datasets=["mosei"], seeds=[1111], data_root=sys.argv[2], out=sys.argv[3],
             name="memory", smoke=True, progress=False, say=lambda m: None)
if result.failures:
    sys.exit("; ".join(result.failures))
"""


def peak_rss(code: str, *argv: str, repo: Path) -> int:
    """Peak RSS (bytes) of ``python -c code argv...`` run with ``repo`` first on the path."""
    env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    stderr = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"error: measured process failed:\n{stderr[-3000:]}")
    return usage.ru_maxrss * 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--models", nargs="+", default=["misa", "dar"])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--work", type=Path, default=None, help="folder for data and results (default: a temp dir)")
    parser.add_argument("--batches", type=int, default=0,
                        help="stop every pass over a loader (train, valid, test) after this many batches: the "
                             "data are still loaded, validated and damaged in full, so memory is measured the "
                             "same while a run takes minutes, not an hour, on a shared CPU (default: all)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="dar-mmsa-memory-"))
    repo = args.repo.resolve()
    gb = 1 << 30
    floor = peak_rss(_IMPORT, repo=repo)
    print(f"repo {repo}\nbatches per pass: {args.batches or 'all'}\nimport dar_mmsa + torch: peak RSS {floor / gb:.2f} GB")
    print(f"{'scale':>5}  {'model':<5}  {'pickle GB':>9}  {'peak GB':>7}  {'above floor GB':>14}  {'ratio':>5}")
    rows = []
    for scale in args.scales:
        root = work / f"data-{scale:g}"
        pkl = root / "MOSEI" / "Processed" / "unaligned_50.pkl"
        if not pkl.is_file():
            peak_rss(_WRITE, str(root), str(scale), repo=repo)
        size = pkl.stat().st_size
        for model in args.models:
            out = work / f"results-{scale:g}-{model}"
            shutil.rmtree(out, ignore_errors=True)  # a stored run would be skipped, not measured
            peak = peak_rss(_RUN, model, str(root), str(out), str(args.batches or 0), repo=repo)
            ratio = (peak - floor) / size
            rows.append({"scale": scale, "model": model, "pickle_bytes": size, "peak_rss_bytes": peak,
                         "floor_rss_bytes": floor, "ratio": round(ratio, 3)})
            print(f"{scale:>5g}  {model:<5}  {size / gb:>9.2f}  {peak / gb:>7.2f}  {(peak - floor) / gb:>14.2f}  "
                  f"{ratio:>5.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"repo": str(repo), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
