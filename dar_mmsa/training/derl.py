"""Trainer of the DERL-style model (from the abstract), ``shared/specs/derl.md`` "Losses and training".

Each training batch is corrupted as LNLN trains (intra-modal missingness with a per-sample,
per-modality rate r ~ U(0, 1), half of the samples complete per modality), then whole modalities
are dropped with probability ``modality_drop_prob`` (at least one kept). The model sees the
corrupted batch plus the complete one (``*_full``, for the reconstruction targets) and the step
minimises

    L = MSE(ŷ, y) + orth_weight L_orth + sim_weight L_sim
        + rec_weight (L_rec1 + L_rec2 + L_rec3) + balance_weight L_bal.

Validation corrupts at ``valid_missing_rate`` (0.5) with the run seed; its ``Loss`` is the MSE of
the prediction (the task term; the auxiliary terms need the complete input the model does not get
at inference) and picks the best epoch. AdamW, constant learning rate.

Choices where the spec is silent:
* the per-epoch tables (rates and kept modalities, one row per training sample, looked up by
  dataset index) come from ``numpy.random.default_rng(epoch_seed(run seed, epoch))``; position
  masks use the same epoch seed through ``corrupt_batch``, so a run is reproducible and masks
  change every epoch;
* the complete half is drawn before the modality drop, independently of it;
* a sample whose drop draw removes all three modalities keeps one chosen uniformly.
"""
from __future__ import annotations

from typing import Dict, Mapping, Tuple

import numpy as np
import torch
from torch import nn

from ..data.corruption import MODALITIES, drop_modalities
from ..errors import ConfigError
from .base import Trainer, epoch_seed


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
            "orth": float(args.get("orth_weight", 0.1)),
            "sim": float(args.get("sim_weight", 0.1)),
            "rec_feature": float(args.get("rec_weight", 0.1)),
            "rec_cross": float(args.get("rec_weight", 0.1)),
            "rec_representation": float(args.get("rec_weight", 0.1)),
            "balance": float(args.get("balance_weight", 0.01)),
        }
        self.last_terms: Dict[str, float] = {}

    def do_train(self, model: nn.Module, dataloader, return_epoch_results: bool = False):
        self.train_size = len(dataloader["train"].dataset)
        return super().do_train(model, dataloader, return_epoch_results)

    def valid_rate(self) -> float:
        return float(self.args.get("valid_missing_rate", 0.5))

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
                complete_fraction=float(self.args.get("train_complete_fraction", 0.5)),
                drop_prob=float(self.args.get("modality_drop_prob", 0.3)),
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
        loss = weighted_objective(task, aux, self.loss_weights)
        self.backward(loss)
        self.step(optimizer)
        self.last_terms = {"task": task.item(), **{k: v.item() for k, v in aux.items()}}
        return out["M"].detach(), loss.item()
