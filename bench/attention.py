#!/usr/bin/env python
"""One training step of LNLN, ALMT, DAR and DERL before and after routing attention through
``F.scaled_dot_product_attention``, in one process.

"Before" is the hand-written attention the models used until now (``softmax(q k^T) v`` with the
T x T weights materialised and dropout applied to them), restated in ``tests/attention_reference.py``
and swapped in for the step; "after" is ``dar_mmsa.models.layers`` as it is. Both start from the same weights and the
same batch: 64 samples of synthetic MOSI with MOSI's unaligned shapes (text 50 tokens, audio
375 x 5, vision 500 x 20) through each model's own trainer (``train_step``: corruption, forward,
losses, backward, optimizer step), with a 1-layer random BERT so that the step is not all BERT.
Times are CPU time (``time.process_time``), the best of ``--steps`` steps after one warm-up step.

    python bench/attention.py
    python bench/attention.py --models lnln dar --steps 3 --device cuda
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # attention_reference: the previous attention, restated


@contextlib.contextmanager
def previous_attention():
    from attention_reference import reference_mult_forward, reference_multihead_attention

    from dar_mmsa.models import layers

    saved = layers.multihead_attention, layers.MulTAttention.forward
    layers.multihead_attention, layers.MulTAttention.forward = reference_multihead_attention, reference_mult_forward
    try:
        yield
    finally:
        layers.multihead_attention, layers.MulTAttention.forward = saved


def step_times(trainer, model, state, batch, steps: int, device) -> float:
    """Best CPU time of ``steps`` training steps after a warm-up, each from ``state``."""
    import torch

    times = []
    for i in range(steps + 1):
        model.load_state_dict(state)
        model.train()
        optimizers = trainer.build_optimizers(model)
        torch.manual_seed(0)
        start = time.process_time()
        trainer.run_train_step(model, batch, optimizers)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.process_time() - start)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["lnln", "almt", "dar", "derl"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1, help="timed steps per variant (after one warm-up)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    import torch
    from torch.utils.data import DataLoader

    from dar_mmsa import runner
    from dar_mmsa.data.synthetic import split_sizes, write_synthetic
    from dar_mmsa.text_encoder import write_tiny_bert

    torch.set_num_threads(1)
    device = runner.resolve_device(args.device)
    scale = 1.05 * args.batch_size / split_sizes("mosi")[0]
    print(f"training step, {args.batch_size} samples, MOSI unaligned shapes, {device}; CPU seconds, "
          f"best of {args.steps} after a warm-up")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        write_synthetic(work / "data", datasets=("mosi",), scale=scale)
        with contextlib.redirect_stderr(io.StringIO()):
            bert = write_tiny_bert(work / "bert", num_layers=1)
        for name in args.models:
            run_args = runner.build_args(name, "mosi", data_root=work / "data", pretrained=bert, device=device,
                                         seed=1111, save_path=work / f"{name}.pth",
                                         overrides={"batch_size": args.batch_size, "need_data_aligned": False})
            loaders = runner.load_data(run_args)
            torch.manual_seed(1111)
            with contextlib.redirect_stderr(io.StringIO()):
                model = runner.build_model(run_args)
                trainer = runner.build_trainer(run_args)
            trainer.epoch, trainer.train_size = 1, len(loaders["train"].dataset)
            batch_data = next(iter(DataLoader(loaders["train"].dataset, batch_size=args.batch_size)))
            batch = trainer.to_batch(batch_data)
            state = copy.deepcopy(model.state_dict())
            after = step_times(trainer, model, state, batch, args.steps, device)
            with previous_attention():
                before = step_times(trainer, model, state, batch, args.steps, device)
            shapes = "/".join(str(tuple(batch[k].shape[1:])) for k in ("audio", "vision"))
            print(f"{name:5} before {before:8.2f} s   after {after:8.2f} s   before/after {before / after:5.2f}x   "
                  f"(audio/vision {shapes})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
