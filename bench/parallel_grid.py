#!/usr/bin/env python
"""Wall time of the smoke benchmark grid run serially against the Ray backend, same machine, same run.

The smoke grid (``--smoke``: dar + misa, 3 seeds, missing rates 0.0 .. 0.9, 2 epochs, synthetic MOSI at 10 %,
tiny BERT) runs twice into separate results folders: ``--backend serial`` and ``--backend ray
--jobs N`` (a local Ray started by the harness; its start-up and storage probe are counted), each
unit with one torch thread. Prints both wall times, their ratio (total, and execution alone), and
compares the two ``evaluations.csv`` cell by cell (metrics and loss; wall times excluded).

    python bench/parallel_grid.py                       # CPU, --jobs 2
    python bench/parallel_grid.py --jobs 4 --device cuda --gpus-per-run 0.5
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["dar", "misa"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1111, 1112, 1113])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: then give --gpus-per-run")
    parser.add_argument("--gpus-per-run", type=float, help="GPUs of one Ray run, e.g. 0.5")
    parser.add_argument("--out", help="results folder (default: a temporary one)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import numpy as np
    import torch

    from dar_mmsa.benchmark import run
    from dar_mmsa.benchmark.aggregate import METRICS
    from dar_mmsa.benchmark.presets import SMOKE_SCALE
    from dar_mmsa.data.synthetic import write_synthetic
    from dar_mmsa.text_encoder import write_tiny_bert

    torch.set_num_threads(1)
    out = Path(args.out or tempfile.mkdtemp(prefix="parallel-grid-"))
    data, bert = out / "data", out / "tiny-bert"
    if not data.exists():
        write_synthetic(data, datasets=("mosi",), scale=SMOKE_SCALE, seed=0)
    if not bert.exists():
        with contextlib.redirect_stderr(io.StringIO()):
            write_tiny_bert(bert, num_layers=1)
    grid = dict(models=args.models, seeds=args.seeds, smoke=True, data_root=str(data), pretrained=str(bert),
                out=out, cpus_per_run=1, progress=False)

    def timed(name, **options):
        start = time.perf_counter()
        result = run(**grid, name=name, **options)
        wall = time.perf_counter() - start
        execution = float(re.search(r"in ([\d.]+)s$", result.summary).group(1))
        assert not result.failures, result.failures
        return result, wall, execution

    serial, serial_wall, serial_exec = timed("serial", device=args.device)
    ray_options = dict(backend="ray", jobs=args.jobs, device="cuda" if args.gpus_per_run else "cpu")
    if args.gpus_per_run:
        ray_options["gpus_per_run"] = args.gpus_per_run
    parallel, ray_wall, ray_exec = timed("ray", **ray_options)

    columns = ["run_id", "condition", *METRICS, "Loss"]
    a = serial.evaluations[columns].sort_values(["run_id", "condition"]).reset_index(drop=True)
    b = parallel.evaluations[columns].sort_values(["run_id", "condition"]).reset_index(drop=True)
    cells = a[[*METRICS, "Loss"]].to_numpy(dtype=float), b[[*METRICS, "Loss"]].to_numpy(dtype=float)
    same_keys = a[["run_id", "condition"]].equals(b[["run_id", "condition"]])
    identical = int(((cells[0] == cells[1]) | (np.isnan(cells[0]) & np.isnan(cells[1]))).sum()) if same_keys else 0
    units, evaluations = len(args.models) * len(args.seeds), len(a)
    print(f"smoke grid: {'+'.join(args.models)} x {len(args.seeds)} seeds x 10 rates = {units} runs, {evaluations} "
          f"evaluations; 1 torch thread per run; {os.cpu_count()} CPUs")
    print(f"serial:              {serial_wall:7.1f} s (execution {serial_exec:.1f} s)")
    print(f"ray --jobs {args.jobs:<2}        {ray_wall:7.1f} s (execution {ray_exec:.1f} s; Ray start-up, "
          f"storage probe and planning {ray_wall - ray_exec:.1f} s)")
    print(f"speed-up serial/ray: {serial_wall / ray_wall:.2f}x total, {serial_exec / ray_exec:.2f}x execution")
    print(f"cells compared: {cells[0].size}, bit-identical: {identical}"
          f"{'' if same_keys else ' (the two runs hold different evaluations)'}")
    return 0 if same_keys and identical == cells[0].size else 1


if __name__ == "__main__":
    sys.exit(main())
