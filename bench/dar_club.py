"""Does the trainer's q_theta keep CLUB an upper-bound estimate while DAR trains?

Trains DAR with given q_theta settings (``club_learning_rate``, ``club_steps``,
``club_warmup_steps``) and, every ``--every`` epochs, compares on a fixed probe of training
features (eval mode, corrupted at k with a fixed seed) the L_diff the trainer's q_theta gives with
the L_diff of fresh q_theta's fitted to convergence on the same features
(:func:`dar_mmsa.models.dar.converged_club`). Prints one line per checkpoint: steps, both values
and their ratio. Without ``--data-root`` a SYNTHETIC MOSI at ``--scale`` is written to a temporary
folder; the text encoder is a tiny random BERT. Example::

    python bench/dar_club.py --epochs 6 --every 2 --set club_learning_rate=1e-4 club_steps=1 club_warmup_steps=0
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--every", type=int, default=2, help="compare every N epochs")
    parser.add_argument("--probe", type=int, default=128, help="training samples in the probe")
    parser.add_argument("--data-root", help="root with MOSI/Processed/unaligned_50.pkl (default: synthetic)")
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1111)
    parser.add_argument("--fit-steps", type=int, default=3000, help="most steps of the fitted reference")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (JSON values)")
    return parser.parse_args(argv)


def probe(model, trainer, loader, n: int):
    """{modality: (H~spec, H~com)} of the first ``n`` training samples, eval mode, corrupted at k."""
    import torch

    from dar_mmsa.training.base import unwrap

    model.eval()
    batches, seen = [], 0
    with torch.no_grad():
        for batch_data in loader:
            batch = trainer.corrupt(trainer.to_batch(batch_data), trainer.train_rate, 12345)
            batches.append(unwrap(model).club_features(trainer.forward_with_complete(model, batch)))
            seen += len(batch["labels"])
            if seen >= n:
                break
    model.train()
    return {m: tuple(torch.cat([b[m][i] for b in batches])[:n] for i in range(2)) for m in batches[0]}


def main(argv=None) -> None:
    options = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    import dar_mmsa  # noqa: F401
    from dar_mmsa import runner
    from dar_mmsa.models.dar import converged_club
    from dar_mmsa.text_encoder import write_tiny_bert
    from dar_mmsa.training.base import unwrap

    work = Path(tempfile.mkdtemp(prefix="dar_club_"))
    root = options.data_root
    if root is None:
        from dar_mmsa.data.synthetic import write_synthetic

        root = work / "data"
        write_synthetic(root, datasets=("mosi",), scale=options.scale, seed=0)
    bert = write_tiny_bert(work / "bert", num_layers=1)
    overrides = {k: json.loads(v) for k, v in (a.split("=", 1) for a in options.set)}
    overrides.update(max_epochs=options.epochs, early_stop=options.epochs)
    args = runner.build_args("dar", "mosi", data_root=str(root), pretrained=str(bert), seed=options.seed,
                             save_path=work / "dar.pth", overrides=overrides)
    loaders = runner.load_data(args)
    model, trainer = runner.build_model(args), runner.build_trainer(args)
    hidden = int(args["club_hidden"])
    print(f"club_learning_rate={args['club_learning_rate']} club_steps={args.get('club_steps')} "
          f"club_warmup_steps={args.get('club_warmup_steps')} lr_schedule={args.get('lr_schedule')}")
    print(f"{'epoch':>5} {'steps':>6} {'trainer':>9} {'fitted':>9} {'ratio':>6} {'s':>6}")
    original = trainer.do_test
    epochs_done = []

    def do_test(m, loader, mode="VAL", **kw):  # after each epoch's training: compare
        result = original(m, loader, mode, **kw)
        if mode == "VAL":
            epochs_done.append(trainer.epoch)
            if trainer.epoch % options.every == 0:
                start = time.time()
                features = probe(m, trainer, loaders["train"], options.probe)
                ours = unwrap(m).club_value(features)
                fitted = converged_club(features, hidden, max_steps=options.fit_steps)
                print(f"{trainer.epoch:5d} {trainer.main_steps:6d} {ours:9.3f} {fitted:9.3f} "
                      f"{ours / fitted if fitted else float('nan'):6.2f} {time.time() - start:6.0f}", flush=True)
        return result

    trainer.do_test = do_test
    trainer.do_train(model, loaders)


if __name__ == "__main__":
    main()
