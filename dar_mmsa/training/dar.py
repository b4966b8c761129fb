"""DAR's trainer (§3.4, §4.2; spec ``shared/specs/dar.md`` §5).

* Every training batch is corrupted on the fly at the training missing rate k
  (``train_missing_rate``) with masks redrawn each epoch (:func:`epoch_seed`); the model sees the
  corrupted and the complete inputs.
* One step = the main step (AdamW on everything but q_theta, L_total of Eq. 24, gradient clipping)
  followed by ``club_steps`` q_theta steps (its own Adam at ``club_learning_rate``, maximum
  likelihood on the batch's detached features): the two are "optimized alternatively" (§3.4).
  For the first ``club_warmup_steps`` main steps L_diff stays out of the training loss while
  q_theta catches up, so that CLUB is an upper bound when the encoders start minimising it. With
  ``use_diff_loss`` false q_theta is not trained.
* Main optimiser: AdamW with BERT in its own parameter groups (``bert_learning_rate``, default
  ``learning_rate`` when null) and no weight decay on biases/norms (``decay_norms: true`` decays
  them too), under the per-epoch warm-up + cosine schedule shared with ALMT/LNLN
  (``lr_schedule: warmup_cosine``, shaped by ``max_epochs``, no lr-0 first epoch) or a constant lr
  (``lr_schedule: constant``). ``OLD_RECIPE`` in :mod:`dar_mmsa.models.dar` lists the previous recipe.
* Every loss term (task, boot, sim_com, sim_spec, diff, re, recon, the weighted total, and
  q_theta's negative log-likelihood ``q_nll``) is logged per epoch for training and validation
  (``Trainer.log_terms``), and beside them what explains L_diff (``CLUB_DIAGNOSTICS``, means over
  the modalities): the per-dimension variance of H~com and of H~spec (``com_var``, ``spec_var``,
  raw features, mean over d), their correlation (``com_spec_corr``) and q_theta's mean variance
  (``q_var``).
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
from ..models.dar import CLUB_DIAGNOSTICS, hyperparameter
from ..models.dar_losses import total_loss
from .base import Trainer, epoch_seed, unwrap
from .optim import parameter_groups
from .schedules import warmup_cosine_scheduler

LR_SCHEDULES = ("warmup_cosine", "constant")
LOGGED_TERMS = ("task", "boot", "sim_com", "sim_spec", "diff", "re", "recon") + CLUB_DIAGNOSTICS


def _rate(args, key: str) -> float:
    value = args.get(key)
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = float("nan")
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"dar: {key} must be a number in [0, 1], got {value!r}")
    return rate


def _count(args, key: str, minimum: int) -> int:
    value = args.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < minimum:
        raise ConfigError(f"dar: {key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class DARTrainer(Trainer):
    def __init__(self, args):
        super().__init__(args)
        self.train_rate = _rate(args, "train_missing_rate")
        if args.get("valid_missing_rate") is not None:
            _rate(args, "valid_missing_rate")
        self.grad_clip = float(args.get("grad_clip") or 0.0)
        self.use_diff = bool(args.get("use_diff_loss", True))
        self.club_steps = _count(args, "club_steps", 1) if "club_steps" in args else 1
        self.club_warmup_steps = _count(args, "club_warmup_steps", 0) if "club_warmup_steps" in args else 0
        self.lr_schedule = args.get("lr_schedule") or "constant"
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"dar: lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        self.main_steps = 0  # main steps taken, for the q_theta warm-up
        self.loss_options = dict(
            alpha=float(hyperparameter(args, "alpha")), beta=float(hyperparameter(args, "beta")),
            lam=float(hyperparameter(args, "lambda_decouple")),
            use_sim=bool(args.get("use_sim_loss", True)), use_diff=self.use_diff,
            use_recon=bool(args.get("use_recon_loss", True)), use_boot=bool(args.get("use_boot_loss", True)),
        )

    # ------------------------------------------------------------------ hooks
    def build_optimizers(self, model: nn.Module):
        net = unwrap(model)
        lr = float(hyperparameter(self.args, "learning_rate"))
        bert_lr = self.args.get("bert_learning_rate")
        groups = parameter_groups(net, net.main_parameters(), lr=lr,
                                  weight_decay=float(hyperparameter(self.args, "weight_decay")),
                                  bert=net.text_encoder, bert_lr=None if bert_lr is None else float(bert_lr),
                                  decay_norms=bool(self.args.get("decay_norms", False)))
        main = torch.optim.AdamW(groups, lr=lr)
        variational = torch.optim.Adam(net.variational_parameters(),
                                       lr=float(hyperparameter(self.args, "club_learning_rate")))
        self.main_steps = 0
        return [main, variational]

    def build_schedulers(self, optimizers) -> list:
        """The main optimiser's per-epoch schedule; q_theta keeps a constant lr."""
        if self.lr_schedule == "constant":
            return []
        return [warmup_cosine_scheduler(optimizers[0], self.max_epochs, skip_zero_lr_epoch=True)]

    def valid_rate(self) -> float:
        """k, unless ``valid_missing_rate`` is set."""
        if self.args.get("valid_missing_rate") is None:
            return self.train_rate
        return float(self.args["valid_missing_rate"])

    @property
    def in_club_warmup(self) -> bool:
        """True while L_diff stays out of the training loss (q_theta still catching up)."""
        return self.main_steps < self.club_warmup_steps

    def forward_with_complete(self, model: nn.Module, batch: Dict):
        """The model on the corrupted inputs with the complete ones beside them (rate 0: the same)."""
        return model(batch["text"], batch["audio"], batch["vision"],
                     text_full=batch.get("text_full", batch["text"]),
                     audio_full=batch.get("audio_full", batch["audio"]),
                     vision_full=batch.get("vision_full", batch["vision"]))

    def objective(self, model: nn.Module, batch: Dict, training: bool = False):
        """(model output, L_total, loss terms) for a batch that carries the complete inputs. In
        training, L_diff is left out during the q_theta warm-up."""
        out = self.forward_with_complete(model, batch)
        terms = unwrap(model).loss_terms(out, batch["labels"])
        options = self.loss_options
        if training and self.in_club_warmup:
            options = dict(options, use_diff=False)
        return out, total_loss(terms, **options), terms

    def log_loss_terms(self, terms: Dict[str, torch.Tensor], total: torch.Tensor, batch_size: int, **extra) -> None:
        logged = {name: terms[name] for name in LOGGED_TERMS}
        logged.update(total=total, **extra)
        self.log_terms(logged, batch_size)

    def fit_posterior(self, model: nn.Module, out: Dict, variational) -> float:
        """``club_steps`` steps of q_theta on the batch's detached features; its last NLL."""
        net = unwrap(model)
        # q_theta trains in fp32 outside autocast: its small steps need no loss scaling
        features = {m: (spec.float(), com.float()) for m, (spec, com) in net.club_features(out).items()}
        with torch.autocast(self.device.type, enabled=False):
            for _ in range(self.club_steps):
                variational.zero_grad()
                nll = net.variational_loss(out, features)
                nll.backward()
                variational.step()
        return float(nll.detach())

    def train_step(self, model: nn.Module, batch: Dict, optimizers) -> Tuple[torch.Tensor, float]:
        main, variational = optimizers
        batch = self.corrupt(batch, self.train_rate, epoch_seed(self.run_seed, self.epoch))
        out, loss, terms = self.objective(model, batch, training=True)
        main.zero_grad()
        self.backward(loss)
        if self.grad_clip > 0:
            self.unscale(main)
            nn.utils.clip_grad_norm_(unwrap(model).main_parameters(), self.grad_clip)
        self.step(main)
        self.main_steps += 1
        extra = {}
        if self.use_diff:
            extra["q_nll"] = self.fit_posterior(model, out, variational)
        self.log_loss_terms(terms, loss, len(batch["labels"]), **extra)
        return out["M"].detach().view(-1, 1), loss.item()

    def eval_step(self, model: nn.Module, batch: Dict, mode: str) -> Tuple[torch.Tensor, float]:
        """VAL: the total loss (selection criterion); other modes: L1 of y^ from the corrupted input."""
        if mode != "VAL":
            return super().eval_step(model, batch, mode)
        out, loss, terms = self.objective(model, batch)
        self.log_loss_terms(terms, loss, len(batch["labels"]))
        return out["M"].view(-1, 1), loss.item()
