"""Trainer of the DERL-style model (from the abstract), ``shared/specs/derl.md`` "Losses and training".

Each training batch is corrupted as LNLN trains (intra-modal missingness with a per-sample,
per-modality rate r ~ U(0, 1), half of the samples complete per modality), then whole modalities
are dropped with probability ``modality_drop_prob`` (at least one kept). The model sees the
corrupted batch plus the complete one (``*_full``, for the reconstruction targets) and the step
minimises

    L = MSE(ŷ, y) + orth_weight L_orth + sim_weight L_sim
        + rec_weight (L_rec1 + L_rec2 + L_rec3) + balance_weight L_bal,

the auxiliary weights ramped in over ``aux_warmup_epochs`` (0: off). Every term is logged per epoch
(``log_terms``): unweighted, plus the weighted ``total``.

Validation corrupts at ``valid_missing_rate`` (0.5) with the run seed; its ``Loss`` is the MSE of
the prediction and picks the best epoch (the auxiliary terms are logged too, reconstructing
against the complete validation input, but do not select). AdamW over
``training.optim.parameter_groups`` (BERT at ``bert_learning_rate``, the rest at
``learning_rate``, no decay on biases and norms); ``lr_schedule`` ``warmup_cosine`` is the shared
per-epoch schedule of ``training.schedules`` shaped by ``max_epochs`` (no lr-0 first epoch),
``constant`` none; ``grad_clip`` > 0 clips the global gradient norm.

Choices where the spec is silent:
* the per-epoch tables (rates and kept modalities, one row per training sample, looked up by
  dataset index) come from ``numpy.random.default_rng(epoch_seed(run seed, epoch))``; position
  masks use the same epoch seed through ``corrupt_batch``, so a run is reproducible and masks
  change every epoch;
* the complete half is drawn before the modality drop, independently of it;
* a sample whose drop draw removes all three modalities keeps one chosen uniformly.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Tuple

import numpy as np
import torch
from torch import nn

from ..data.corruption import MODALITIES
from ..data.modality_drop import drop_modalities
from ..errors import ConfigError
from ..models.derl import _HYPERPARAMETERS as DERL_HYPERPARAMETERS
from .base import Trainer, epoch_seed, unwrap
from .optim import parameter_groups
from .schedules import warmup_cosine_scheduler

LR_SCHEDULES = ("warmup_cosine", "constant")


def training_missingness(num_samples: int, seed: int, *, complete_fraction: float = 0.5,
                         drop_prob: float = 0.3) -> Tuple[np.ndarray, np.ndarray]:
    """One epoch's missingness for a training set of ``num_samples`` samples.

    Returns:
        rates (N, 3) float in [0, 1) over (text, audio, vision): r ~ U(0, 1), then for each modality
        independently floor(N * complete_fraction) samples chosen without replacement get r = 0;
        present (N, 3) bool: each modality kept with probability 1 − drop_prob, and a sample left
        with none keeps one modality chosen uniformly.
    """
    if not 0.0 <= complete_fraction <= 1.0 or not 0.0 <= drop_prob <= 1.0:
        raise ConfigError(f"train_complete_fraction ({complete_fraction}) and modality_drop_prob ({drop_prob}) "
                          f"must lie in [0, 1]: fix the derl config")
    rng = np.random.default_rng(seed)
    rates = rng.random((num_samples, len(MODALITIES)))
    complete_count = int(np.floor(num_samples * complete_fraction))
    for m in range(len(MODALITIES)):
        rates[rng.choice(num_samples, size=complete_count, replace=False), m] = 0.0
    present = rng.random((num_samples, len(MODALITIES))) >= drop_prob
    rescued = rng.integers(0, len(MODALITIES), size=num_samples)
    empty = ~present.any(axis=1)
    present[empty, rescued[empty]] = True
    return rates, present


def weighted_objective(task_loss: torch.Tensor, aux_losses: Mapping[str, torch.Tensor],
                       weights: Mapping[str, float]) -> torch.Tensor:
    """task + Σ_k weights[k] · aux_losses[k] over the terms the model produced."""
    total = task_loss
    for name, value in aux_losses.items():
        total = total + float(weights[name]) * value
    return total


class DERLTrainer(Trainer):
    criterion = nn.MSELoss()

    def __init__(self, args):
        super().__init__(args)
        self.train_size = None
        self._missingness_epoch, self._missingness = None, None
        self.loss_weights = {
            "orth": float(self.setting("orth_weight")),
            "sim": float(self.setting("sim_weight")),
            "rec_feature": float(self.setting("rec_weight")),
            "rec_cross": float(self.setting("rec_weight")),
            "rec_representation": float(self.setting("rec_weight")),
            "balance": float(self.setting("balance_weight")),
        }
        for name, weight in self.loss_weights.items():
            if not weight >= 0.0:
                raise ConfigError(f"derl loss weight of {name} must be >= 0, got {weight}: fix the config")
        self.aux_warmup_epochs = int(self.setting("aux_warmup_epochs"))
        if self.aux_warmup_epochs < 0:
            raise ConfigError(f"derl aux_warmup_epochs must be >= 0, got {self.aux_warmup_epochs}: fix the config")
        self.lr_schedule = str(self.setting("lr_schedule")).lower()
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"derl lr_schedule '{args.get('lr_schedule')}' is unknown: use one of "
                              f"{', '.join(LR_SCHEDULES)}")
        self.grad_clip = float(self.setting("grad_clip"))
        self.last_terms: Dict[str, float] = {}

    def setting(self, key: str):
        """``key`` from the run's args, else the model's default (so a bare args dict trains as configured)."""
        value = self.args.get(key)
        return DERL_HYPERPARAMETERS[key] if value is None else value

    # ------------------------------------------------------------------ optimisation
    def build_optimizers(self, model: nn.Module) -> List[torch.optim.Optimizer]:
        """AdamW over the shared parameter groups: BERT at ``bert_learning_rate`` (default
        ``learning_rate``), the rest at ``learning_rate``, no decay on biases and norms."""
        net = unwrap(model)
        lr = float(self.setting("learning_rate"))
        bert_lr = self.args.get("bert_learning_rate", DERL_HYPERPARAMETERS["bert_learning_rate"])
        groups = parameter_groups(net, lr=lr, weight_decay=float(self.setting("weight_decay")),
                                  bert=getattr(net, "bert", None),
                                  bert_lr=float(bert_lr) if bert_lr is not None else None)
        return [torch.optim.AdamW(groups)]

    def build_schedulers(self, optimizers) -> list:
        """``warmup_cosine``: the shared warm-up + cosine schedule shaped by ``max_epochs``, stepped per
        epoch, without the reference's lr-0 first epoch; ``constant``: none."""
        if self.lr_schedule == "constant":
            return []
        return [warmup_cosine_scheduler(opt, self.max_epochs, skip_zero_lr_epoch=True) for opt in optimizers]

    def current_loss_weights(self) -> Dict[str, float]:
        """The auxiliary weights of the current epoch: ramped linearly from 1/(W+1) to 1 over the
        first ``aux_warmup_epochs`` = W epochs (the task head learns the label scale first)."""
        ramp = min(1.0, self.epoch / (self.aux_warmup_epochs + 1)) if self.aux_warmup_epochs else 1.0
        return {name: weight * ramp for name, weight in self.loss_weights.items()}

    def do_train(self, model: nn.Module, dataloader, return_epoch_results: bool = False):
        self.train_size = len(dataloader["train"].dataset)
        return super().do_train(model, dataloader, return_epoch_results)

    def valid_rate(self) -> float:
        return float(self.setting("valid_missing_rate"))

    # ------------------------------------------------------------------ training corruption
    def epoch_missingness(self) -> Tuple[np.ndarray, np.ndarray]:
        """(rates, present) of the current epoch, drawn once per epoch."""
        if self._missingness_epoch != self.epoch:
            size = self.train_size or int(self.args.get("train_samples") or 0)
            if size < 1:
                raise ConfigError("DERLTrainer does not know the training set size: call do_train, "
                                  "or set train_samples in the config")
            self._missingness = training_missingness(
                size, epoch_seed(self.run_seed, self.epoch),
                complete_fraction=float(self.setting("train_complete_fraction")),
                drop_prob=float(self.setting("modality_drop_prob")),
            )
            self._missingness_epoch = self.epoch
        return self._missingness

    def corrupt_for_training(self, batch: Dict) -> Dict:
        """The batch with this epoch's intra-modal corruption and modality drop (``*_full`` complete)."""
        rates, present = self.epoch_missingness()
        index = np.asarray(batch["index"].cpu() if isinstance(batch["index"], torch.Tensor) else batch["index"])
        if index.max() >= len(rates):
            raise ConfigError(f"sample index {index.max()} outside the training set of {len(rates)}: "
                              f"train_samples does not match the data")
        rate = {name: rates[index, m] for m, name in enumerate(MODALITIES)}
        out = self.corrupt(batch, rate, epoch_seed(self.run_seed, self.epoch))
        out["text"], out["audio"], out["vision"] = drop_modalities(out["text"], out["audio"], out["vision"],
                                                                  present[index])
        return out

    # ------------------------------------------------------------------ steps
    def train_step(self, model: nn.Module, batch: Dict, optimizers) -> Tuple[torch.Tensor, float]:
        (optimizer,) = optimizers
        optimizer.zero_grad()
        batch = self.corrupt_for_training(batch)
        out = model(batch["text"], batch["audio"], batch["vision"], text_full=batch["text_full"],
                    audio_full=batch["audio_full"], vision_full=batch["vision_full"])
        task = self.criterion(out["M"], batch["labels"])
        aux = out.get("aux_losses", {})
        loss = weighted_objective(task, aux, self.current_loss_weights())
        self.backward(loss)
        if self.grad_clip > 0:
            self.unscale(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
        self.step(optimizer)
        self.last_terms = {"task": task.item(), **{k: v.item() for k, v in aux.items()}, "total": loss.item()}
        self.log_terms(self.last_terms, len(batch["labels"]))
        return out["M"].detach(), loss.item()

    def eval_step(self, model: nn.Module, batch: Dict, mode: str) -> Tuple[torch.Tensor, float]:
        """The task MSE (VAL: the selection criterion); on VAL every loss term is logged too, the
        reconstruction levels against the complete validation input."""
        if mode != "VAL":
            return super().eval_step(model, batch, mode)
        complete = {f"{k}_full": batch.get(f"{k}_full", batch[k]) for k in MODALITIES}
        out = model(batch["text"], batch["audio"], batch["vision"], with_losses=True, **complete)
        pred = out["M"].view(-1, 1)
        task = self.criterion(pred, batch["labels"])
        aux = out["aux_losses"]
        total = weighted_objective(task, aux, self.current_loss_weights())
        self.log_terms({"task": task, **aux, "total": total}, len(pred))
        return pred, task.item()
