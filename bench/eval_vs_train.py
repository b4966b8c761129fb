#!/usr/bin/env python
"""How long the benchmark's 10-rate evaluation of a trained model takes relative to one training run.

Both are measured here, in one process, on the same data: one training run through the model's
own trainer (``dar_mmsa.runner.train``, exactly ``--epochs`` epochs: early stopping is pushed out),
then the evaluation at missing rates 0.0 .. 0.9 exactly as the harness does it
(``dar_mmsa.benchmark.evaluate``). The synthetic splits keep MOSI's train/test proportions, so the
"evaluation = N epochs" figure carries over to real data; real runs train for tens of epochs
(early stopping), so there the ratio is smaller still than with the 10 epochs used here.

    python bench/eval_vs_train.py                       # DAR, synthetic MOSI at 10%, 10 epochs, CPU
    python bench/eval_vs_train.py --model misa --epochs 20
    python bench/eval_vs_train.py --data-root ~/MMSA-data --pretrained ~/bert-base-uncased --device cuda:0
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
    parser.add_argument("--dataset", default="mosi")
    parser.add_argument("--seed", type=int, default=1111)
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--scale", type=float, default=0.1,
                        help="synthetic data size, as a fraction of the real splits")
    parser.add_argument("--data-root", help="real MMSA data root (default: synthetic data in a temporary folder)")
    parser.add_argument("--pretrained", help="local BERT (default: a tiny random BERT)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    import torch

    from dar_mmsa import runner
    from dar_mmsa.benchmark.evaluate import evaluate
    from dar_mmsa.benchmark.grid import DEFAULT_RATES, Condition
    from dar_mmsa.data.synthetic import write_synthetic
    from dar_mmsa.errors import DarMmsaError
    from dar_mmsa.text_encoder import write_tiny_bert

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        try:
            data_root = args.data_root
            if data_root is None:
                data_root = work / "data"
                write_synthetic(data_root, datasets=(args.dataset,), scale=args.scale)
            with contextlib.redirect_stderr(io.StringIO()):
                pretrained = args.pretrained or write_tiny_bert(work / "bert", num_layers=1)
            run_args = runner.build_args(args.model, args.dataset, data_root=data_root, pretrained=pretrained,
                                         device=args.device, seed=args.seed, save_path=work / "model.pth",
                                         overrides={"max_epochs": args.epochs, "early_stop": args.epochs + 1,
                                                    "batch_size": args.batch_size})
        except DarMmsaError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        loaders = runner.load_data(run_args)
        with contextlib.redirect_stderr(io.StringIO()):  # MMSA trainers draw progress bars
            start = time.perf_counter()
            runner.train(run_args, loaders)
            train_s = time.perf_counter() - start
            model = runner.load_checkpoint(runner.build_model(run_args), run_args)
            trainer = runner.build_trainer(run_args)
            start = time.perf_counter()
            for rate in DEFAULT_RATES:
                torch.manual_seed(args.seed)
                evaluate(model, trainer, loaders["test"].dataset, Condition.intra(rate), args.seed,
                         batch_size=args.batch_size, device=run_args["device"],
                         data_missing=bool(run_args.get("data_missing")))
            eval_s = time.perf_counter() - start
    sizes = {split: len(loader.dataset) for split, loader in loaders.items()}
    print(f"{args.model} on {args.dataset} ({'real' if args.data_root else 'synthetic'} data, "
          f"train/valid/test {sizes['train']}/{sizes['valid']}/{sizes['test']}, {args.device})")
    print(f"one training run ({args.epochs} epochs):   {train_s:8.2f} s")
    print(f"evaluation at {len(DEFAULT_RATES)} missing rates: {eval_s:8.2f} s "
          f"({eval_s / len(DEFAULT_RATES):.2f} s per rate; "
          f"as much as {eval_s / train_s * args.epochs:.1f} training epochs)")
    print(f"evaluation / training = {eval_s / train_s:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
