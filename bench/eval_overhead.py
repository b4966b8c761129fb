#!/usr/bin/env python
"""The harness's overhead on evaluation: its 10-rate evaluation of a model against ten plain
forward passes over the same test set with the same model, in one process.

The harness (``dar_mmsa.benchmark.evaluate``) corrupts the whole test split at each rate, builds a
loader over the damaged copy and runs the model's own ``do_test`` (metrics, loss); the plain pass
is ``model(text, audio, vision)`` under ``torch.no_grad`` over the test loader, ten times.
``harness / plain`` is what the harness adds around the forward passes (1.0 = nothing). The
model's weights do not change the cost, so it is evaluated as initialised (seeded). Times are
CPU time (``time.process_time``), the best of ``--repeats``.

    python bench/eval_overhead.py                        # DAR, synthetic MOSI test split at 10%
    python bench/eval_overhead.py --model lnln --scale 1 --batch-size 64
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="dar")
    parser.add_argument("--scale", type=float, default=0.1, help="synthetic data size (fraction of MOSI's splits)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    import torch
    from torch.utils.data import DataLoader

    from dar_mmsa import runner
    from dar_mmsa.benchmark.evaluate import evaluate
    from dar_mmsa.benchmark.grid import DEFAULT_RATES, Condition
    from dar_mmsa.data.synthetic import write_synthetic
    from dar_mmsa.text_encoder import write_tiny_bert

    torch.set_num_threads(1)
    device = runner.resolve_device(args.device)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        write_synthetic(work / "data", datasets=("mosi",), scale=args.scale)
        with contextlib.redirect_stderr(io.StringIO()):
            bert = write_tiny_bert(work / "bert", num_layers=1)
        run_args = runner.build_args(args.model, "mosi", data_root=work / "data", pretrained=bert, device=device,
                                     seed=1111, save_path=work / "model.pth", overrides={"batch_size": args.batch_size})
        loaders = runner.load_data(run_args)
        test_set = loaders["test"].dataset
        torch.manual_seed(1111)
        with contextlib.redirect_stderr(io.StringIO()):
            model = runner.build_model(run_args).eval()
            trainer = runner.build_trainer(run_args)

        def harness():
            for rate in DEFAULT_RATES:
                evaluate(model, trainer, test_set, Condition.intra(rate), 1111, batch_size=args.batch_size,
                         device=device)

        @torch.no_grad()
        def plain():
            loader = DataLoader(test_set, batch_size=args.batch_size, shuffle=False)
            for _ in DEFAULT_RATES:
                for batch in loader:
                    model(*(batch[k].to(device) for k in ("text", "audio", "vision")))

        times = {"harness": [], "plain": []}
        with contextlib.redirect_stderr(io.StringIO()):
            plain()  # warm-up
            for _ in range(args.repeats):
                for name, fn in (("plain", plain), ("harness", harness)):
                    start = time.process_time()
                    fn()
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    times[name].append(time.process_time() - start)
    h, p = min(times["harness"]), min(times["plain"])
    print(f"{args.model}, synthetic MOSI test split ({len(test_set)} samples), batch {args.batch_size}, {device}; "
          f"CPU seconds, best of {args.repeats}")
    print(f"harness: {len(DEFAULT_RATES)}-rate evaluation   {h:8.2f} s")
    print(f"plain: {len(DEFAULT_RATES)} forward passes          {p:8.2f} s")
    print(f"harness / plain = {h / p:.3f}  (overhead {100 * (h / p - 1):.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
