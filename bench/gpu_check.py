#!/usr/bin/env python
"""GPU figures for ``bench/gpu_check.sh``: peak memory per model, timed DAR epochs. One line per figure.

    python bench/gpu_check.py memory --models dar lnln misa --precisions fp32 bf16
    python bench/gpu_check.py epoch --precisions fp32 bf16 fp16

Data: synthetic MOSI in MMSA's format with MOSI's unaligned shapes (``memory``: 10% of the
samples, ``epoch``: full size, 1284/229/686); text encoder: a random BERT of ``--bert-layers``
layers, 768 wide (12 = BERT-base size). ``--smoke`` shrinks everything to check the script on a CPU.
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

OUR_FIRST = ("dar", "derl", "almt", "lnln", "cenet", "tetfn", "misa", "self_mm")


def prepare(work: Path, scale: float, layers: int):
    from dar_mmsa.data.synthetic import write_synthetic
    from dar_mmsa.text_encoder import write_tiny_bert

    root = work / f"data-{scale:g}"
    if not root.exists():
        write_synthetic(root, datasets=("mosi",), scale=scale)
    bert = work / f"bert-{layers}"
    if not bert.exists():
        with contextlib.redirect_stderr(io.StringIO()):
            write_tiny_bert(bert, num_layers=layers)
    return root, bert


def train_once(model: str, root, bert, device, precision: str, work: Path, overrides: dict):
    """Train for ``max_epochs`` through the model's trainer; returns (seconds, peak MiB or None)."""
    import torch

    from dar_mmsa import runner
    from dar_mmsa.registry import our_models

    extra = dict(overrides)
    if precision != "fp32" and model in our_models():
        extra["precision"] = precision
    args = runner.build_args(model, "mosi", data_root=root, pretrained=bert, device=device, seed=1111,
                             save_path=work / f"{model}-{precision}.pth", overrides=extra)
    loaders = runner.load_data(args, num_workers=2 if device.type == "cuda" else 0, pin_memory=device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        runner.train(args, loaders)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return seconds, peak, args


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("memory", "epoch"))
    parser.add_argument("--models", nargs="+", default=list(OUR_FIRST))
    parser.add_argument("--precisions", nargs="+", default=["fp32"])
    parser.add_argument("--bert-layers", type=int, default=12)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--work", help="cache folder for data and BERT (default: a temporary folder)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script on a CPU")
    args = parser.parse_args(argv)

    import torch

    from dar_mmsa import runner
    from dar_mmsa.errors import DarMmsaError
    from dar_mmsa.registry import our_models

    device = runner.resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        layers = 1 if args.smoke else args.bert_layers
        if args.what == "memory":
            root, bert = prepare(work, 0.02 if args.smoke else 0.1, layers)
            for model in args.models:
                for precision in args.precisions:
                    if precision != "fp32" and model not in our_models():
                        continue  # MMSA's trainers run in fp32 only
                    try:
                        seconds, peak, run_args = train_once(model, root, bert, device, precision, work,
                                                             {"max_epochs": 1, "epoch_cap": 1, "early_stop": 2})
                    except (DarMmsaError, RuntimeError) as exc:
                        print(f"peak memory {model} {precision}: failed ({type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:160]})", flush=True)
                        continue
                    peak_text = f"{peak:.0f} MiB" if peak is not None else "n/a (not cuda)"
                    print(f"peak memory {model} {precision}: {peak_text} (1 epoch, batch {run_args['batch_size']}, "
                          f"BERT {layers} layers, {seconds:.1f} s)", flush=True)
        else:
            root, bert = prepare(work, 0.02 if args.smoke else 1.0, layers)
            for precision in args.precisions:
                try:
                    seconds, peak, run_args = train_once("dar", root, bert, device, precision, work,
                                                         {"max_epochs": 1, "early_stop": 2})
                except (DarMmsaError, RuntimeError) as exc:
                    print(f"DAR epoch {precision}: failed ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:160]})", flush=True)
                    continue
                n = len(runner.load_data(run_args)["train"].dataset)
                peak_text = f", peak {peak:.0f} MiB" if peak is not None else ""
                print(f"DAR epoch {precision}: {seconds:.1f} s (train {n} + validation, batch {run_args['batch_size']}, "
                      f"BERT {layers} layers{peak_text})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
