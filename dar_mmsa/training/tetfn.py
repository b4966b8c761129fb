"""TETFN's trainer (MMSA master ``trains/multiTask/TETFN.py`` behaviour, spec §2.3).

Multi-task training in the style of Self-MM (Yu et al., AAAI 2021): the fusion head (M) learns
the ground truth; the text, audio and vision heads learn *generated* unimodal labels, which move
each epoch towards where the sample's unimodal feature lies between that modality's positive and
negative class centres, relative to where the fusion feature lies. Per-sample labels, features and
centres live on the device, indexed by the dataset index ``batch["index"]`` (``train_samples``
rows; MMSA's loader hook sets it to the real train-set size).

Optimisation: Adam (coupled L2) with five parameter groups (BERT decayed / BERT bias+LayerNorm /
audio subnet / video subnet / everything else), each with its own lr and weight decay; gradients
accumulate over ``update_epochs`` (4) *batches* with the loss not divided; no clipping, no
scheduler; early stopping on the validation L1 of M.

Reference behaviour by default: when an epoch's batch count is not a multiple of
``update_epochs`` the trailing batches' gradients are discarded (the next epoch starts with
``zero_grad``). ``flush_trailing_gradients: true`` takes an optimiser step on them instead.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import nn

from ..errors import ConfigError
from .base import Trainer, unwrap

MODALITIES = ("fusion", "text", "audio", "vision")
UNIMODAL = MODALITIES[1:]
OUTPUT_KEY = {"fusion": "M", "text": "T", "audio": "A", "vision": "V"}
FEATURE_KEY = {"fusion": "Feature_f", "text": "Feature_t", "audio": "Feature_a", "vision": "Feature_v"}
FEATURE_DIM_KEY = {"fusion": "post_fusion_dim", "text": "post_text_dim", "audio": "post_audio_dim",
                   "vision": "post_video_dim"}
EPS = 1e-8
BERT_NO_DECAY = ("bias", "LayerNorm.bias", "LayerNorm.weight")


# ----------------------------------------------------------------------------- pure functions
def weighted_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor = None) -> torch.Tensor:
    """mean_i w_i |pred_i - target_i| (w = 1 when not given): one task's term of Self-MM's loss."""
    error = (pred.view(-1) - target.view(-1)).abs()
    return (error if weight is None else weight.view(-1) * error).mean()


def unimodal_loss_weight(unimodal_labels: torch.Tensor, fusion_labels: torch.Tensor) -> torch.Tensor:
    """w_s = tanh(|y_s - y_M|): samples whose generated label departs more from the truth count more."""
    return torch.tanh((unimodal_labels - fusion_labels).abs())


def relative_distance(features: torch.Tensor, positive_centre: torch.Tensor,
                      negative_centre: torch.Tensor) -> torch.Tensor:
    """delta = (||f - c_neg|| - ||f - c_pos||) / (||f - c_pos|| + eps), per sample."""
    to_positive = torch.linalg.vector_norm(features - positive_centre, dim=-1)
    to_negative = torch.linalg.vector_norm(features - negative_centre, dim=-1)
    return (to_negative - to_positive) / (to_positive + EPS)


def generated_labels(delta_unimodal: torch.Tensor, delta_fusion: torch.Tensor, fusion_labels: torch.Tensor,
                     bound: float) -> torch.Tensor:
    """y~_s = clamp(0.5 alpha y_M + 0.5 (y_M + delta_s - delta_f), -H, H), alpha = delta_s / (delta_f + eps):
    the average of the ratio and the difference forms of Self-MM's label generation."""
    alpha = delta_unimodal / (delta_fusion + EPS)
    new = 0.5 * alpha * fusion_labels + 0.5 * (fusion_labels + delta_unimodal - delta_fusion)
    return new.clamp(-bound, bound)


def moving_average_labels(current: torch.Tensor, new: torch.Tensor, epoch: int) -> torch.Tensor:
    """y_s <- (n-1)/(n+1) y_s + 2/(n+1) y~_s at epoch n (1-based): later epochs move labels less."""
    return (epoch - 1) / (epoch + 1) * current + 2 / (epoch + 1) * new


# ----------------------------------------------------------------------------- state
class UnimodalLabels:
    """Per-sample labels and features and per-modality class centres for the four heads."""

    def __init__(self, train_samples: int, feature_dims: Dict[str, int], device, exclude_zero: bool = True,
                 bound: float = 3.0):
        self.size, self.exclude_zero, self.bound = int(train_samples), exclude_zero, float(bound)
        self.labels = {m: torch.zeros(self.size, device=device) for m in MODALITIES}
        self.features = {m: torch.zeros(self.size, feature_dims[m], device=device) for m in MODALITIES}
        self.centres = {m: {"pos": torch.zeros(feature_dims[m], device=device),
                            "neg": torch.zeros(feature_dims[m], device=device)} for m in MODALITIES}

    def check_indexes(self, indexes: torch.Tensor) -> None:
        if len(indexes) and int(indexes.max()) >= self.size:
            raise ConfigError(f"tetfn: sample index {int(indexes.max())} is outside train_samples={self.size}; "
                              f"set train_samples to the train-set size (MMSA's loader does this)")

    def initialise(self, indexes: torch.Tensor, truth: torch.Tensor) -> None:
        """Every head starts from the ground-truth label."""
        self.check_indexes(indexes)
        for m in MODALITIES:
            self.labels[m][indexes] = truth.view(-1)

    def loss(self, outputs: Dict[str, torch.Tensor], indexes: torch.Tensor) -> torch.Tensor:
        """L = sum over M, T, A, V of mean_i w_i^m |y^_i^m - y_i^m| with w^M = 1 and w^s = tanh(|y^s - y^M|)."""
        fusion = self.labels["fusion"][indexes]
        total = weighted_l1(outputs["M"], fusion)
        for m in UNIMODAL:
            target = self.labels[m][indexes]
            total = total + weighted_l1(outputs[OUTPUT_KEY[m]], target, unimodal_loss_weight(target, fusion))
        return total

    def update_labels(self, features: Dict[str, torch.Tensor], indexes: torch.Tensor, epoch: int) -> None:
        """Move this batch's unimodal labels towards the generated ones, using the current centres."""
        fusion = self.labels["fusion"][indexes]
        delta_f = relative_distance(features["fusion"], self.centres["fusion"]["pos"], self.centres["fusion"]["neg"])
        for m in UNIMODAL:
            delta_s = relative_distance(features[m], self.centres[m]["pos"], self.centres[m]["neg"])
            new = generated_labels(delta_s, delta_f, fusion, self.bound)
            self.labels[m][indexes] = moving_average_labels(self.labels[m][indexes], new, epoch)

    def update_features(self, features: Dict[str, torch.Tensor], indexes: torch.Tensor) -> None:
        for m in MODALITIES:
            self.features[m][indexes] = features[m]

    def update_centres(self) -> None:
        """Class centres over the whole train set, each modality by its own current labels.

        A class with no member keeps a zero centre (the reference would produce NaN).
        """
        for m in MODALITIES:
            labels = self.labels[m]
            positive = labels > 0 if self.exclude_zero else labels >= 0
            for side, members in (("pos", positive), ("neg", labels < 0)):
                if members.any():
                    self.centres[m][side] = self.features[m][members].mean(dim=0)
                else:
                    self.centres[m][side] = torch.zeros_like(self.centres[m][side])


# ----------------------------------------------------------------------------- optimiser
def tetfn_parameter_groups(net: nn.Module, args) -> List[Dict]:
    """The reference's five groups: BERT (decayed), BERT bias/LayerNorm (no decay), audio subnet,
    video subnet, everything else; each with its own lr and weight decay."""
    bert_decay, bert_no_decay = [], []
    for name, param in net.text_model.named_parameters():
        (bert_no_decay if any(marker in name for marker in BERT_NO_DECAY) else bert_decay).append(param)
    audio, video = list(net.audio_model.parameters()), list(net.video_model.parameters())
    taken = {id(p) for p in bert_decay + bert_no_decay + audio + video}
    other = [p for p in net.parameters() if id(p) not in taken]
    return [
        {"params": bert_decay, "lr": args["learning_rate_bert"], "weight_decay": args["weight_decay_bert"]},
        {"params": bert_no_decay, "lr": args["learning_rate_bert"], "weight_decay": 0.0},
        {"params": audio, "lr": args["learning_rate_audio"], "weight_decay": args["weight_decay_audio"]},
        {"params": video, "lr": args["learning_rate_video"], "weight_decay": args["weight_decay_video"]},
        {"params": other, "lr": args["learning_rate_other"], "weight_decay": args["weight_decay_other"]},
    ]


# ----------------------------------------------------------------------------- trainer
class TETFNTrainer(Trainer):
    criterion = nn.L1Loss()  # validation/test Loss: plain L1 of M against the ground truth

    def __init__(self, args):
        super().__init__(args)
        self.update_every = int(args.get("update_epochs") or 4)
        self.flush_trailing = bool(args.get("flush_trailing_gradients"))
        self.unimodal_labels = None
        self.batches_per_epoch = 0
        self._position = 0  # batch position within the current epoch
        self._position_epoch = None

    def build_optimizers(self, model: nn.Module) -> List[torch.optim.Optimizer]:
        return [torch.optim.Adam(tetfn_parameter_groups(unwrap(model), self.args))]

    def initialise_labels(self, train_loader) -> UnimodalLabels:
        dims = {m: int(self.args[FEATURE_DIM_KEY[m]]) for m in MODALITIES}
        state = UnimodalLabels(self.args["train_samples"], dims, self.device,
                               exclude_zero=bool(self.args.get("excludeZero", True)),
                               bound=float(self.args.get("H", 3.0)))
        for batch_data in train_loader:
            batch = self.to_batch(batch_data)
            state.initialise(self._indexes(batch), batch["labels"])
        return state

    def do_train(self, model: nn.Module, dataloader, return_epoch_results: bool = False):
        self.unimodal_labels = self.initialise_labels(dataloader["train"])
        self.batches_per_epoch = len(dataloader["train"])
        self._position, self._position_epoch = 0, None
        return super().do_train(model, dataloader, return_epoch_results)

    def _indexes(self, batch: Dict) -> torch.Tensor:
        return torch.as_tensor(batch["index"], device=self.device).long().view(-1)

    def takes_step(self, position: int) -> bool:
        """Whether the optimiser steps after the batch at ``position`` (1-based) of an epoch."""
        if position % self.update_every == 0:
            return True
        return self.flush_trailing and position == self.batches_per_epoch

    def train_step(self, model: nn.Module, batch: Dict, optimizers) -> Tuple[torch.Tensor, float]:
        (optimizer,) = optimizers
        if self._position_epoch != self.epoch:
            self._position, self._position_epoch = 0, self.epoch
        if self._position % self.update_every == 0:
            optimizer.zero_grad()
        self._position += 1

        state, indexes = self.unimodal_labels, self._indexes(batch)
        state.check_indexes(indexes)
        outputs = model(batch["text"], batch["audio"], batch["vision"])
        loss = state.loss(outputs, indexes)
        self.backward(loss)

        features = {m: outputs[FEATURE_KEY[m]].detach().float() for m in MODALITIES}  # float32 under autocast
        if self.epoch > 1:
            state.update_labels(features, indexes, self.epoch)
        state.update_features(features, indexes)
        state.update_centres()

        if self.takes_step(self._position):
            self.step(optimizer)
        return outputs["M"].detach().view(-1, 1), loss.item()
