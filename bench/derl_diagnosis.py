#!/usr/bin/env python
"""Why the DERL-style model (from the abstract) learns or not: one training run, per epoch.

Printed per epoch (one JSON line each, ``--out`` keeps them):

* every loss term of training and validation (the trainer's ``log_terms``), unweighted;
* gradient norms on the first batch of the epoch, separately for the task term and for the
  weighted auxiliary terms, reaching each part of the model (regressor, fusion, experts,
  decoders, encoders, BERT) -- which term drives which part;
* the learning rate of each parameter group;
* on the test split (complete input, r = 0): the std of the predictions against the labels' std,
  the MAE against that of the mean predictor (the training labels' mean), the correlation.

    python bench/derl_diagnosis.py --data-root DATA --pretrained BERT --epochs 10 --set learning_rate=1e-4
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PARTS = ("regressor", "fusion", "experts", "decoders", "encoders", "bert")


def parse_sets(pairs):
    out = {}
    for pair in pairs or []:
        key, _, value = pair.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def part_norms(net, grads_by_param):
    norms = {}
    for part in PARTS:
        module = getattr(net, part)
        total = sum(float(grads_by_param[id(p)].pow(2).sum()) for p in module.parameters()
                    if grads_by_param.get(id(p)) is not None)
        norms[part] = round(total ** 0.5, 6)
    return norms


def gradient_split(trainer, net, batch):
    """Gradient norms per model part of the task term and of the weighted auxiliary terms."""
    import torch

    from dar_mmsa.training.derl import weighted_objective

    net.train()
    batch = trainer.corrupt_for_training(batch)
    out = net(batch["text"], batch["audio"], batch["vision"], text_full=batch["text_full"],
              audio_full=batch["audio_full"], vision_full=batch["vision_full"])
    task = trainer.criterion(out["M"], batch["labels"])
    weights = trainer.current_loss_weights() if hasattr(trainer, "current_loss_weights") else trainer.loss_weights
    aux = weighted_objective(task.new_zeros(()), out["aux_losses"], weights)
    params = [p for p in net.parameters() if p.requires_grad]
    result = {}
    pieces = [("task", task), ("aux", aux)]
    pieces += [(f"aux:{k}", float(weights[k]) * v) for k, v in out["aux_losses"].items() if float(weights[k]) > 0]
    for name, loss in pieces:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        result[name] = part_norms(net, {id(p): g for p, g in zip(params, grads)})
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--pretrained", required=True)
    parser.add_argument("--seed", type=int, default=1111)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--set", nargs="*", default=[], help="config overrides KEY=VALUE")
    parser.add_argument("--out", help="also write the JSON lines here")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from dar_mmsa import runner
    from dar_mmsa.training.base import unwrap

    torch.set_num_threads(1)
    overrides = dict(parse_sets(args.set), max_epochs=args.epochs, early_stop=args.epochs + 1)
    sink = open(args.out, "w") if args.out else None
    with tempfile.TemporaryDirectory() as work:
        run_args = runner.build_args("derl", "mosi", data_root=args.data_root, pretrained=args.pretrained,
                                     seed=args.seed, save_path=Path(work) / "m.pth", overrides=overrides)
        loaders = runner.load_data(run_args)
        import MMSA.run as run

        run.setup_seed(args.seed)
        model = runner.build_model(run_args)
        trainer = runner.build_trainer(run_args)
        net = unwrap(model)
        train_labels = np.concatenate([b["labels"]["M"].view(-1).numpy() for b in loaders["train"]])
        mean_label = float(train_labels.mean())
        first = {}

        original_step = trainer.train_step

        def train_step(model_, batch, optimizers):
            if trainer.epoch not in first:
                first[trainer.epoch] = gradient_split(trainer, net, batch)
                first[trainer.epoch]["lr"] = {g.get("name", str(i)): g["lr"]
                                              for i, g in enumerate(optimizers[0].param_groups)}
            return original_step(model_, batch, optimizers)

        trainer.train_step = train_step
        original_test = trainer.do_test
        state = {"t": time.time()}

        def do_test(model_, loader, mode="VAL", return_sample_results=False):
            results = original_test(model_, loader, mode, return_sample_results)
            if mode != "VAL":
                return results
            # after validation: the test split at r = 0, then one line for the epoch
            terms_backup = trainer._terms
            trainer._terms = None
            preds, labels = [], []
            model_.eval()
            with torch.no_grad():
                for batch_data in loaders["test"]:
                    batch = trainer.to_batch(batch_data)
                    preds.append(trainer.predict(model_, batch).view(-1))
                    labels.append(batch["labels"].view(-1))
            trainer._terms = terms_backup
            p, y = torch.cat(preds).numpy(), torch.cat(labels).numpy()
            line = {
                "epoch": trainer.epoch, "seconds": round(time.time() - state["t"], 1),
                "train_terms": None, "valid_loss": results["Loss"],
                "test_pred_std": round(float(p.std()), 4), "test_label_std": round(float(y.std()), 4),
                "test_mae": round(float(np.abs(p - y).mean()), 4),
                "mean_predictor_mae": round(float(np.abs(mean_label - y).mean()), 4),
                "test_corr": round(float(np.corrcoef(p, y)[0, 1]), 4) if p.std() > 0 else 0.0,
                "grads": first.get(trainer.epoch),
            }
            state["line"] = line
            return results

        trainer.do_test = do_test
        original_collect = trainer._collect_terms
        collected = []

        def collect():
            terms = original_collect()
            collected.append(terms)
            if len(collected) % 2 == 0:  # train, then valid: the epoch is complete
                line = state.pop("line")
                line["train_terms"], line["valid_terms"] = collected[-2], collected[-1]
                text = json.dumps(line)
                print(text, flush=True)
                if sink:
                    sink.write(text + "\n")
                    sink.flush()
                state["t"] = time.time()
            return terms

        trainer._collect_terms = collect
        trainer.do_train(model, loaders)
    return 0


if __name__ == "__main__":
    sys.exit(main())
