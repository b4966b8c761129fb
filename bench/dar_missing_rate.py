"""Does training DAR at a missing rate k > 0 make it degrade less under missing data?

Trains DAR once per (k, seed) and prints the test MAE at each test missing rate, and the
degradation MAE(rate) - MAE(0). Without ``--data-root`` it writes a SYNTHETIC MOSI (``--scale`` of
the real split sizes) and without ``--pretrained`` a tiny random 64-wide BERT, both in a temporary
directory, and trains a small DAR (d=32, t=16, 1 fusion layer); ``--full-size`` keeps the paper's
sizes. Example::

    python bench/dar_missing_rate.py --ks 0.0 0.3 --seeds 1111 1112 1113 --epochs 8
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

SMALL = dict(dim=32, aligned_len=16, encoder_heads=4, encoder_dim_head=8, encoder_mlp_dim=64, fusion_layers=1,
             fusion_heads=4, club_hidden=16, batch_size=32, learning_rate=1e-3, club_learning_rate=1e-3, dropout=0.0)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=float, nargs="+", default=[0.0, 0.3], help="training missing rates")
    parser.add_argument("--test-rates", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1111])
    parser.add_argument("--epochs", type=int, default=8, help="max_epochs (early stopping stays on)")
    parser.add_argument("--dataset", default="mosi", choices=["mosi", "mosei"])
    parser.add_argument("--data-root", help="root with MOSI/Processed/unaligned_50.pkl (default: synthetic)")
    parser.add_argument("--scale", type=float, default=0.3, help="synthetic split sizes, fraction of the real")
    parser.add_argument("--pretrained", help="local BERT directory (default: a tiny random one)")
    parser.add_argument("--full-size", action="store_true", help="the paper's sizes instead of the small DAR")
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def train_and_test(options, k: float, seed: int, data_root: str, pretrained: str, workdir: Path) -> dict:
    from dar_mmsa import runner

    overrides = dict(train_missing_rate=k, max_epochs=options.epochs)
    if not options.full_size:
        overrides.update(SMALL)
    args = runner.build_args("dar", options.dataset, data_root=data_root, pretrained=pretrained,
                             device=options.device, seed=seed, save_path=workdir / f"dar-k{k}-{seed}.pth",
                             overrides=overrides)
    loaders = runner.load_data(args)
    start = time.time()
    model, trainer = runner.train(args, loaders)
    row = {"k": k, "seed": seed, "best_epoch": trainer.best_epoch, "train_s": time.time() - start}
    for rate in options.test_rates:
        trainer.args["test_missing_rate"] = rate
        row[rate] = float(trainer.do_test(model, loaders["test"], mode="TEST")["MAE"])
    return row


def main(argv=None) -> None:
    options = parse_args(argv)
    import dar_mmsa  # noqa: F401  -- registers dar
    from dar_mmsa.data.synthetic import write_synthetic
    from dar_mmsa.text_encoder import write_tiny_bert

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data_root = options.data_root
        if data_root is None:
            data_root = str(workdir / "data")
            write_synthetic(data_root, datasets=(options.dataset,), scale=options.scale)
            print(f"SYNTHETIC {options.dataset} at scale {options.scale} (not the real data)")
        pretrained = options.pretrained or str(write_tiny_bert(workdir / "bert", num_layers=1, hidden_size=64,
                                                               num_heads=4, intermediate_size=64))
        rows = []
        for k in options.ks:
            for seed in options.seeds:
                rows.append(train_and_test(options, k, seed, data_root, pretrained, workdir))
                print(f"trained k={k} seed={seed}: " + ", ".join(f"MAE@{r}={rows[-1][r]:.4f}"
                                                               for r in options.test_rates), flush=True)

    rates = options.test_rates
    print("\ntest MAE by training missing rate k (rows) and test missing rate (columns)")
    print(f"{'k':>5} {'seed':>6} {'epoch':>5} " + " ".join(f"{r:>8.1f}" for r in rates)
          + f" {'degrade':>8} {'train_s':>8}")
    for row in rows:
        print(f"{row['k']:>5.2f} {row['seed']:>6} {row['best_epoch']:>5} "
              + " ".join(f"{row[r]:>8.4f}" for r in rates)
              + f" {row[rates[-1]] - row[rates[0]]:>8.4f} {row['train_s']:>8.1f}")
    print("\nmean over seeds")
    for k in options.ks:
        mine = [row for row in rows if row["k"] == k]
        means = [np.mean([row[r] for row in mine]) for r in rates]
        print(f"k={k:.2f}: " + "  ".join(f"MAE@{r:.1f}={m:.4f}" for r, m in zip(rates, means))
              + f"  degradation={means[-1] - means[0]:.4f}")


if __name__ == "__main__":
    main()
