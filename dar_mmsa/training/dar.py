"""DAR's trainer (§3.4, §4.2; spec ``shared/specs/dar.md`` §5).

* Every training batch is corrupted on the fly at the training missing rate k
  (``train_missing_rate``) with masks redrawn each epoch (:func:`epoch_seed`); the model sees the
  corrupted and the complete inputs.
* One step = the main step (AdamW on everything but q_theta, L_total of Eq. 24, gradient clipping)
  followed by the q_theta step (its own Adam, maximum likelihood on detached features): the two are
  "optimized alternatively" (§3.4). With ``use_diff_loss`` false q_theta is not trained.
* The kept epoch has the lowest *total* validation loss ("the same model with the smallest overall
  loss", §4.2): validation is corrupted at k (``valid_missing_rate`` overrides) with the run seed,
  and the loss needs the complete inputs too. ``do_test(mode="TEST")`` reports the L1 of y^ on the
  (corrupted) test inputs; inference uses the corrupted input only.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import nn

from ..errors import ConfigError
from ..models.dar import hyperparameter
from ..models.dar_losses import total_loss
from .base import Trainer, epoch_seed, unwrap


def _rate(args, key: str) -> float:
    value = args.get(key)
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = float("nan")
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"dar: {key} must be a number in [0, 1], got {value!r}")
    return rate


class DARTrainer(Trainer):
    def __init__(self, args):
        super().__init__(args)
        self.train_rate = _rate(args, "train_missing_rate")
        if args.get("valid_missing_rate") is not None:
            _rate(args, "valid_missing_rate")
        self.grad_clip = float(args.get("grad_clip") or 0.0)
        self.use_diff = bool(args.get("use_diff_loss", True))
        self.loss_options = dict(
            alpha=float(hyperparameter(args, "alpha")), beta=float(hyperparameter(args, "beta")),
            lam=float(hyperparameter(args, "lambda_decouple")),
            use_sim=bool(args.get("use_sim_loss", True)), use_diff=self.use_diff,
            use_recon=bool(args.get("use_recon_loss", True)), use_boot=bool(args.get("use_boot_loss", True)),
        )

    # ------------------------------------------------------------------ hooks
    def build_optimizers(self, model: nn.Module):
        net = unwrap(model)
        main = torch.optim.AdamW(net.main_parameters(), lr=float(hyperparameter(self.args, "learning_rate")),
                                 weight_decay=float(hyperparameter(self.args, "weight_decay")))
        variational = torch.optim.Adam(net.variational_parameters(),
                                       lr=float(hyperparameter(self.args, "club_learning_rate")))
        return [main, variational]

    def valid_rate(self) -> float:
        """k, unless ``valid_missing_rate`` is set."""
        if self.args.get("valid_missing_rate") is None:
            return self.train_rate
        return float(self.args["valid_missing_rate"])

    def forward_with_complete(self, model: nn.Module, batch: Dict):
        """The model on the corrupted inputs with the complete ones beside them (rate 0: the same)."""
        return model(batch["text"], batch["audio"], batch["vision"],
                     text_full=batch.get("text_full", batch["text"]),
                     audio_full=batch.get("audio_full", batch["audio"]),
                     vision_full=batch.get("vision_full", batch["vision"]))

    def objective(self, model: nn.Module, batch: Dict):
        """(model output, L_total) for a batch that carries the complete inputs."""
        out = self.forward_with_complete(model, batch)
        terms = unwrap(model).loss_terms(out, batch["labels"])
        return out, total_loss(terms, **self.loss_options)

    def train_step(self, model: nn.Module, batch: Dict, optimizers) -> Tuple[torch.Tensor, float]:
        main, variational = optimizers
        batch = self.corrupt(batch, self.train_rate, epoch_seed(self.run_seed, self.epoch))
        out, loss = self.objective(model, batch)
        main.zero_grad()
        self.backward(loss)
        if self.grad_clip > 0:
            self.unscale(main)
            nn.utils.clip_grad_norm_(unwrap(model).main_parameters(), self.grad_clip)
        self.step(main)
        if self.use_diff:
            variational.zero_grad()
            self.backward(unwrap(model).variational_loss(out))
            self.step(variational)
        return out["M"].detach().view(-1, 1), loss.item()

    def eval_step(self, model: nn.Module, batch: Dict, mode: str) -> Tuple[torch.Tensor, float]:
        """VAL: the total loss (selection criterion); other modes: L1 of y^ from the corrupted input."""
        if mode != "VAL":
            return super().eval_step(model, batch, mode)
        out, loss = self.objective(model, batch)
        return out["M"].view(-1, 1), loss.item()
