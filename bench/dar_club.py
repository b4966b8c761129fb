"""Does DAR's CLUB measure dependence, is it tight, and does the trainer's q_theta keep up?

Two measurements (docs/models.md, "DAR: a scale-free L_diff"):

``inputs`` -- what CLUB should see, on synthetic features, no DAR:
  1. the estimate of a q_theta fitted to convergence (read on held-out samples) against the true
     CLUB of Gaussian features, for each ``club_input``, with and without the variance cap, with
     H~com scaled by 0.25 / 1 / 4 (raw spread 0.1, about DAR's);
  2. two small residual encoders of one input, trained on a task plus w * L_diff with q_theta
     alternating (5 steps per main step, Adam 3e-3, as in DAR), for each way of feeding CLUB
     (``raw``, ``scale_free``, the same with its statistics held constant, LayerNorm without
     affine): how the raw feature variances, the correlation, a scale-free Gaussian dependence
     measure and the task end up.

``train`` -- DAR on synthetic MOSI (or ``--data-root``), with a tiny random BERT: every ``--every``
  epochs, on a probe of training features (eval mode, corrupted at k with a fixed seed) and a
  held-out probe of validation features: the trainer's L_diff, a converged q_theta of the same capped
  family (does q_theta keep up?), an uncapped one (is the estimate tight?), and the converged
  estimate with H~com or H~spec scaled by 0.25 and 4 (is it scale-free?).

Examples::

    python bench/dar_club.py inputs
    python bench/dar_club.py train --epochs 6 --every 2 --set club_input='"raw"'
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

SCALES = (0.25, 1.0, 4.0)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    inputs = sub.add_parser("inputs", help="what CLUB should see, on synthetic features")
    inputs.add_argument("--steps", type=int, default=400, help="main steps of the encoder measurement")
    inputs.add_argument("--seeds", type=int, nargs="+", default=[0])
    train = sub.add_parser("train", help="DAR's running L_diff against converged references")
    train.add_argument("--epochs", type=int, default=6)
    train.add_argument("--every", type=int, default=2, help="compare every N epochs")
    train.add_argument("--probe", type=int, default=128, help="samples in each probe")
    train.add_argument("--data-root", help="root with MOSI/Processed/unaligned_50.pkl (default: synthetic)")
    train.add_argument("--scale", type=float, default=0.2)
    train.add_argument("--seed", type=int, default=1111)
    train.add_argument("--fit-steps", type=int, default=3000, help="most steps of a reference fit")
    train.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (JSON values)")
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- inputs
def gaussian_features(n, rho, seed, d=8, t=2, spread=0.1):
    import torch

    gen = torch.Generator().manual_seed(seed)
    spec = torch.randn(n, t, d, generator=gen)
    com = rho * spec + math.sqrt(1 - rho ** 2) * torch.randn(n, t, d, generator=gen)
    return {"x": (spread * spec, spread * com)}


def estimator_table() -> None:
    from dar_mmsa.models.dar_club import converged_club, rescaled

    print("converged q_theta (16 wide), read on held-out samples; d = 8, t = 2, 256 samples each")
    print(f"{'rho':>4} {'true':>6} {'club_input':>10} {'cap':>5} " + " ".join(f"com x{s:<5}" for s in SCALES))
    for rho in (0.5, 0.9):
        fitting, held_out = gaussian_features(256, rho, 0), gaussian_features(256, rho, 1)
        for club_input in ("raw", "scale_free"):
            for capped in (True, False):
                row = [converged_club(rescaled(fitting, com=s), 16, club_input=club_input, capped=capped,
                                      held_out=rescaled(held_out, com=s), max_steps=1500, patience=100)
                       for s in SCALES]
                print(f"{rho:4.1f} {8 * rho ** 2 / (1 - rho ** 2):6.2f} {club_input:>10} {str(capped):>5} "
                      + " ".join(f"{v:9.2f}" for v in row), flush=True)


def feeders():
    """Ways of feeding CLUB: the product's two and the alternatives measured against them."""
    import torch.nn.functional as F

    from dar_mmsa.models import dar_losses as losses

    def held_constant(x, eps=1e-6):
        axes = tuple(range(x.dim() - 1))
        stats = x.detach()
        return (x - stats.mean(axes, keepdim=True)) / (stats.var(axes, unbiased=False, keepdim=True) + eps ** 2).sqrt()

    return {"raw": lambda x: x, "scale_free": losses.standardise, "stats_const": held_constant,
            "layernorm": lambda x: F.layer_norm(x, x.shape[-1:])}


def gaussian_dependence(spec, com) -> float:
    """I(spec; com) of Gaussians with the samples' covariances (nats, per step): scale-free."""
    import torch

    s, c = spec.reshape(-1, spec.shape[-1]).double(), com.reshape(-1, com.shape[-1]).double()
    logdet = lambda z: torch.linalg.slogdet(torch.cov(z.T))[1]  # noqa: E731
    return float(0.5 * (logdet(s) + logdet(c) - logdet(torch.cat([s, c], 1))))


def encoder_run(feed, weight: float, steps: int, seed: int, d: int = 8, t: int = 4, batch: int = 64):
    """(first, last) (com_var, spec_var, corr, dependence) on a probe, and the last task loss."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from dar_mmsa.models import dar_losses as losses
    from dar_mmsa.models.dar import GaussianPosterior, frozen

    class Residual(nn.Module):  # as DAR's pre-norm encoders: the input rides on the residual path
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))

        def forward(self, x):
            return x + self.f(x)

    torch.manual_seed(seed)
    common, independent, head, q = Residual(), Residual(), nn.Linear(2 * d, 1), GaussianPosterior(d, 16)
    weights = torch.randn(d)
    main = torch.optim.AdamW([*common.parameters(), *independent.parameters(), *head.parameters()], lr=3e-3)
    variational = torch.optim.Adam(q.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed + 1)
    probe = 0.1 * torch.randn(512, t, d, generator=gen)

    def state():
        with torch.no_grad():
            com, spec = common(probe), independent(probe)
            stats = losses.feature_statistics(com, spec)
            return stats["com_var"], stats["spec_var"], stats["com_spec_corr"], gaussian_dependence(spec, com)

    first = state()
    for step in range(steps):
        x = 0.1 * torch.randn(batch, t, d, generator=gen)
        com, spec = common(x), independent(x)
        task = F.mse_loss(head(torch.cat([com, spec], -1).mean(1)), 10 * (x @ weights).mean(1, keepdim=True))
        with frozen(q):
            diff = losses.club_estimate(*q(feed(spec)), feed(com))
        main.zero_grad()
        (task + (weight * diff if step >= 30 else 0.0)).backward()
        main.step()
        seen_spec, seen_com = feed(spec.detach()), feed(com.detach())
        for _ in range(5):
            variational.zero_grad()
            (-losses.gaussian_log_likelihood(*q(seen_spec), seen_com)).backward()
            variational.step()
    return first, state(), float(task.detach())


def encoder_table(steps: int, seeds) -> None:
    print(f"\nresidual encoders, task + w * L_diff, {steps} main steps; ratios are end / start on a probe")
    print(f"{'feed':>11} {'w':>5} {'seed':>4} {'com var':>8} {'spec var':>8} {'corr':>11} {'dependence':>13} "
          f"{'task':>6}")
    for name, feed in feeders().items():
        for weight in (0.07, 0.7):
            for seed in seeds:
                (c0, s0, r0, m0), (c1, s1, r1, m1), task = encoder_run(feed, weight, steps, seed)
                print(f"{name:>11} {weight:5.2f} {seed:4d} {c1 / c0:7.2f}x {s1 / s0:7.2f}x {r0:5.2f}->{r1:5.2f} "
                      f"{m0:6.2f}->{m1:5.2f} {task:6.3f}", flush=True)


# ----------------------------------------------------------------------------- train
def probe(model, trainer, loader, n: int):
    """{modality: (H~spec, H~com)} of the first ``n`` samples of ``loader``, eval mode, corrupted at k."""
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


def train_table(options) -> None:
    import torch

    import dar_mmsa  # noqa: F401
    from dar_mmsa import runner
    from dar_mmsa.models.dar_club import converged_club, rescaled, tightness
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
    fit = dict(max_steps=options.fit_steps)
    print(" ".join(f"{k}={args.get(k)}" for k in ("club_input", "club_reduction", "club_learning_rate", "club_steps",
                                                  "club_warmup_steps", "lr_schedule")))
    print(f"{'epoch':>5} {'steps':>6} {'trainer':>9} {'capped':>9} {'ratio':>6} {'uncapped':>10} {'ratio':>6} "
          + " ".join(f"{f'{w} x{s}':>10}" for w in ("com", "spec") for s in (0.25, 4)) + f" {'s':>5}")
    original = trainer.do_test

    def do_test(m, loader, mode="VAL", **kw):  # after each epoch's training: compare
        result = original(m, loader, mode, **kw)
        if mode == "VAL" and trainer.epoch % options.every == 0:
            start, net = time.time(), unwrap(m)
            fitting = probe(m, trainer, loaders["train"], options.probe)
            held_out = probe(m, trainer, loaders["valid"], options.probe)
            capped = tightness(net, fitting, held_out, capped=True, **fit)
            uncapped = tightness(net, fitting, held_out, **fit)
            hidden = int(args["club_hidden"])
            scaled = [converged_club(rescaled(fitting, **{w: s}), hidden, club_input=net.club_input,
                                     reduction=net.club_reduction, held_out=rescaled(held_out, **{w: s}), **fit)
                      for w in ("com", "spec") for s in (0.25, 4)]
            print(f"{trainer.epoch:5d} {trainer.main_steps:6d} {capped.running:9.3f} {capped.reference:9.3f} "
                  f"{capped.ratio:6.2f} {uncapped.reference:10.2f} {uncapped.ratio:6.3f} "
                  + " ".join(f"{v:10.3f}" for v in scaled) + f" {time.time() - start:5.0f}", flush=True)
        return result

    trainer.do_test = do_test
    torch.manual_seed(options.seed)
    trainer.do_train(model, loaders)
    shown = ("task", "diff", "q_nll", "com_var", "spec_var", "com_spec_corr", "q_var")
    print("\ntraining record, train split:\n" + f"{'epoch':>5} " + " ".join(f"{k:>13}" for k in shown))
    for epoch, results in enumerate(trainer.history["train"], 1):
        terms = results.get("terms", {})
        print(f"{epoch:5d} " + " ".join(f"{terms.get(k, math.nan):13.4f}" for k in shown))


def main(argv=None) -> None:
    options = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if options.mode == "inputs":
        estimator_table()
        encoder_table(options.steps, options.seeds)
    else:
        train_table(options)


if __name__ == "__main__":
    main()
