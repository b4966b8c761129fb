#!/usr/bin/env python
"""The paired bootstrap's cost on a MOSEI-sized comparison, against the floor of its matrix products.

The harness (``dar_mmsa.benchmark.significance.bootstrap_curves`` and the lead summaries that
``analysis.compare_to_reference`` makes of them) is run on random predictions of the size of a full
MOSEI Table 1: 4659 test samples, 10 missing rates, 3 seeds, 9 models (one reference and 8 others),
``--draws`` draws. The floor is the part no implementation can skip: for every model, the product of
the draws' sample multiplicities (B, N) with its per-sample quantities (N, seeds x rates x 18), at
the same chunk size. ``harness / floor`` is what drawing the multiplicities, turning sums into
metrics and summarising the leads add (1.0 = nothing). Times are CPU time (``time.process_time``)
of one thread, the best of ``--repeats``.

    python bench/bootstrap_cost.py                      # MOSEI size, 10,000 draws
    python bench/bootstrap_cost.py --n-test 686 --draws 1000   # MOSI's test split, 1,000 draws
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _harness(label, predictions, reference, rates, n_boot):
    from dar_mmsa.benchmark.aggregate import METRICS
    from dar_mmsa.benchmark.robustness import robustness_lead_rows
    from dar_mmsa.benchmark.significance import bootstrap_curves, lead_rows

    point, draws = bootstrap_curves(label, predictions, n_boot=n_boot, seed=0)
    rows = 0
    for model in predictions:
        if model == reference:
            continue
        for metric in METRICS:
            rows += len(lead_rows(metric, point[reference][metric], point[model][metric], draws[reference][metric],
                                  draws[model][metric]))
            rows += len(robustness_lead_rows(metric, rates, point[reference][metric], point[model][metric],
                                             draws[reference][metric], draws[model][metric]))
    return rows


def _floor(label, predictions, n_boot):
    import numpy as np

    from dar_mmsa.benchmark.significance import CHUNK, sample_quantities

    n = len(label)
    weights = np.random.default_rng(0).multinomial(n, np.full(n, 1.0 / n), size=CHUNK).astype(np.float64)
    matrices = []
    for p in predictions.values():
        x = np.stack([sample_quantities(p[s, r], label) for s in range(p.shape[0]) for r in range(p.shape[1])])
        matrices.append(x.transpose(1, 0, 2).reshape(n, -1))
    start = time.process_time()
    for begin in range(0, n_boot, CHUNK):
        for x in matrices:
            weights[: min(CHUNK, n_boot - begin)] @ x
    return time.process_time() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-test", type=int, default=4659, help="test samples (default: MOSEI's 4659)")
    parser.add_argument("--rates", type=int, default=10, help="missing rates (default: 10)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds (default: 3)")
    parser.add_argument("--models", type=int, default=9, help="models, the reference included (default: 9)")
    parser.add_argument("--draws", type=int, default=10000, help="bootstrap draws (default: 10000)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("note: set OMP_NUM_THREADS=1 (and OPENBLAS_NUM_THREADS=1) for one-thread CPU times", file=sys.stderr)

    import numpy as np

    import dar_mmsa.benchmark.significance  # noqa: F401  -- imported before the clock starts (MMSA, torch)

    rng = np.random.default_rng(1)
    label = np.round(rng.uniform(-3, 3, args.n_test) * 3) / 3
    predictions = {f"model{i}": (label + rng.normal(0, 0.8 + 0.05 * i, (args.seeds, args.rates, args.n_test)))
                   .astype(np.float32) for i in range(args.models)}
    rates = [i / 10 for i in range(args.rates)]
    harness, floor, rows = [], [], 0
    for _ in range(args.repeats):
        start = time.process_time()
        rows = _harness(label, predictions, "model0", rates, args.draws)
        harness.append(time.process_time() - start)
        floor.append(_floor(label, predictions, args.draws))
    best, base = min(harness), min(floor)
    print(f"{args.models} models x {args.seeds} seeds x {args.rates} rates x {args.n_test} test samples, "
          f"{args.draws} draws: {rows} leads")
    print(f"harness {best:.1f} s CPU, floor (matrix products) {base:.1f} s, harness / floor {best / base:.2f}, "
          f"{best / (args.models - 1):.1f} s per compared model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
