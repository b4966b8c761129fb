"""The training loop our models share, in MMSA's trainer contract.

``Trainer(args).do_train(model, dataloader)`` trains with early stopping on the validation
``Loss`` (MMSA's ``KeyEval`` for MOSI/MOSEI), saving the best ``state_dict`` to
``args.model_save_path``; ``do_test(model, loader, mode)`` returns MMSA's ``MetricsTop`` dict plus
``"Loss"`` (with ``return_sample_results``, also per sample and in the same pass: ``Ids``, ``Index``,
``SResults`` = the predictions the metrics were computed from, ``Labels``). Subclasses override the
hooks (``build_optimizers``, ``train_step``, ``eval_step``, ``predict``), not the loop.

Missing-data conventions:
* ``corrupt`` applies the protocol's corruption (``dar_mmsa.data.corruption``) to a batch; during
  training the seed is derived from (run seed, epoch), so masks are redrawn every epoch and the
  same run gives the same masks.
* ``do_test(mode="VAL")`` corrupts the validation set at ``valid_missing_rate`` with the run seed.
* ``do_test(mode="TEST")`` corrupts at ``test_missing_rate`` (default 0). The benchmark harness
  corrupts test arrays itself and leaves this at 0, so every model sees the same inputs.

Precision (``args["precision"]``, :mod:`.precision`): ``train_step`` and ``eval_step`` run under
autocast; steps call ``self.backward(loss)``, ``self.unscale(optimizer)`` (before clipping) and
``self.step(optimizer)`` so that fp16's loss scaling applies.
"""
from __future__ import annotations

import logging
import math
from typing import Dict, List, Tuple

import torch
from torch import nn

from ..data.corruption import corrupt_batch
from ..registry import current_seed
from .precision import Precision

logger = logging.getLogger("MMSA")


def unwrap(model: nn.Module) -> nn.Module:
    """Our model inside MMSA's AMIO wrapper (or the module itself)."""
    return getattr(model, "Model", model)


def setting(args, key: str, default, cast=int):
    """``args[key]`` with MMSA's meaning: the default only when the key is absent or None, so 0 stays 0
    (``early_stop: 0`` stops after the first epoch without improvement, as MMSA's trainers do)."""
    value = args.get(key)
    return default if value is None else cast(value)


def max_grad_norm(args, key: str = "max_grad_norm", default=None):
    """A gradient-norm limit with MMSA's convention: negative (-1) = no clipping (None); 0 is refused."""
    value = setting(args, key, default, float)
    if value is None or value < 0:
        return None
    if value == 0:
        from ..errors import ConfigError

        raise ConfigError(f"{key}: 0 would zero every gradient: use -1 for no clipping or a positive norm")
    return value


def clip_gradients(parameters, max_norm) -> None:
    """``clip_grad_norm_`` over ``parameters`` unless ``max_norm`` is None (see :func:`max_grad_norm`)."""
    if max_norm is not None:
        nn.utils.clip_grad_norm_(list(parameters), max_norm)


def epoch_seed(run_seed: int, epoch: int) -> int:
    """Seed of the training masks of one epoch: distinct per epoch, fixed per run."""
    return int(run_seed) * 1_000_003 + int(epoch)


class Trainer:
    criterion: nn.Module = nn.L1Loss()

    def __init__(self, args):
        from MMSA.utils import MetricsTop

        self.args = args
        self.device = torch.device(args.get("device") or "cpu")
        self.metrics = MetricsTop("regression").getMetics(args["dataset_name"])
        self.max_epochs = int(args.get("max_epochs") or 100)  # our key: 0 / None = the default cap
        self.early_stop = setting(args, "early_stop", 10)
        self.precision = Precision(args.get("precision") or "fp32", self.device)
        self.epoch = 0
        self.history = {"train": [], "valid": []}  # per-epoch results, loss terms included ("terms")
        self._terms = None  # {name: [weighted sum, weight]} of the split being run

    # ------------------------------------------------------------------ loss terms
    def log_terms(self, terms: Dict[str, object], weight: int = 1) -> None:
        """Record loss-term values of one batch (floats or 0-d tensors); averaged per epoch and split,
        sample-weighted, into ``history[split][epoch]["terms"]`` and the run's log."""
        if self._terms is None:
            return
        for name, value in terms.items():
            value = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
            total = self._terms.setdefault(name, [0.0, 0])
            total[0] += value * weight
            total[1] += weight

    def _collect_terms(self) -> Dict[str, float]:
        terms = {name: round(total / weight, 6) for name, (total, weight) in (self._terms or {}).items() if weight}
        self._terms = None
        return terms

    # ------------------------------------------------------------------ hooks
    def build_optimizers(self, model: nn.Module) -> List[torch.optim.Optimizer]:
        return [torch.optim.AdamW(model.parameters(), lr=self.args.get("learning_rate", 1e-4),
                                  weight_decay=self.args.get("weight_decay", 1e-4))]

    def build_schedulers(self, optimizers) -> list:
        """Schedulers stepped once per epoch, after validation."""
        return []

    def train_step(self, model: nn.Module, batch: Dict, optimizers) -> Tuple[torch.Tensor, float]:
        """One optimisation step; returns (detached predictions (B, 1), loss value)."""
        (optimizer,) = optimizers
        optimizer.zero_grad()
        pred = self.predict(model, batch)
        loss = self.criterion(pred, batch["labels"])
        self.backward(loss)
        self.clip(model, optimizer)
        self.step(optimizer)
        return pred.detach(), loss.item()

    def clip(self, model: nn.Module, optimizer) -> None:
        """Between backward and the step of :meth:`train_step`: nothing by default."""

    # ------------------------------------------------------------------ precision
    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, outside autocast and scaled under fp16."""
        self.precision.backward(loss)

    def unscale(self, optimizer) -> None:
        """Call before clipping gradients (fp16: they are scaled until then)."""
        self.precision.unscale(optimizer)

    def step(self, optimizer) -> None:
        """``optimizer.step()`` (fp16: skipped when the gradients hold inf/NaN)."""
        self.precision.step(optimizer)

    def run_train_step(self, model: nn.Module, batch: Dict, optimizers) -> Tuple[torch.Tensor, float]:
        """``train_step`` under this run's precision; predictions come back as float32."""
        with self.precision.autocast():
            pred, loss = self.train_step(model, batch, optimizers)
        self.precision.update()
        return pred.float(), loss

    def predict(self, model: nn.Module, batch: Dict) -> torch.Tensor:
        out = model(batch["text"], batch["audio"], batch["vision"])
        if isinstance(out, dict):
            out = out["M"]
        elif isinstance(out, (tuple, list)):
            out = out[0]
        return out.view(-1, 1)

    def eval_step(self, model: nn.Module, batch: Dict, mode: str) -> Tuple[torch.Tensor, float]:
        """Predictions and loss value on an evaluation batch (inputs already corrupted)."""
        pred = self.predict(model, batch)
        return pred, self.criterion(pred, batch["labels"]).item()

    def valid_rate(self) -> float:
        return float(self.args.get("valid_missing_rate") or 0.0)

    def test_rate(self) -> float:
        return float(self.args.get("test_missing_rate") or 0.0)

    # ------------------------------------------------------------------ batches
    def to_batch(self, batch_data: Dict) -> Dict:
        """MMSA batch -> tensors on the device; ``labels`` is (B, 1)."""
        non_blocking = self.device.type == "cuda"  # pinned host memory (GPU runs) copies asynchronously
        batch = {k: batch_data[k].to(self.device, non_blocking=non_blocking) for k in ("text", "audio", "vision")}
        batch["labels"] = batch_data["labels"]["M"].to(self.device, non_blocking=non_blocking).view(-1, 1)
        batch["index"] = batch_data["index"]
        for key in ("audio_lengths", "vision_lengths"):
            batch[key] = batch_data.get(key)
        return batch

    def corrupt(self, batch: Dict, rate, seed: int) -> Dict:
        """A copy of ``batch`` with corrupted text/audio/vision (the complete ones kept as ``*_full``)."""
        text, audio, vision = corrupt_batch(
            batch["text"], batch["audio"], batch["vision"], rate=rate, seed=seed, sample_index=batch["index"],
            audio_lengths=batch["audio_lengths"], vision_lengths=batch["vision_lengths"],
        )
        out = dict(batch, text=text, audio=audio, vision=vision)
        out.update(text_full=batch["text"], audio_full=batch["audio"], vision_full=batch["vision"])
        return out

    @property
    def run_seed(self) -> int:
        return current_seed(self.args)

    # ------------------------------------------------------------------ loop
    def do_train(self, model: nn.Module, dataloader, return_epoch_results: bool = False):
        optimizers = self.build_optimizers(model)
        schedulers = self.build_schedulers(optimizers)
        best_loss, best_epoch = math.inf, 0
        history = self.history = {"train": [], "valid": []}
        for epoch in range(1, self.max_epochs + 1):
            self.epoch = epoch
            model.train()
            self._terms = {}
            preds, labels, losses = [], [], []
            for batch_data in dataloader["train"]:
                batch = self.to_batch(batch_data)
                pred, loss = self.run_train_step(model, batch, optimizers)
                preds.append(pred.cpu())
                labels.append(batch["labels"].cpu())
                losses.append(loss)
            train_results = dict(self.metrics(torch.cat(preds), torch.cat(labels)), Loss=sum(losses) / len(losses))
            train_terms = self._collect_terms()
            self._terms = {}
            valid_results = self.do_test(model, dataloader["valid"], mode="VAL")
            valid_terms = self._collect_terms()
            if train_terms or valid_terms:
                train_results["terms"], valid_results = train_terms, dict(valid_results, terms=valid_terms)
            for scheduler in schedulers:
                scheduler.step()
            history["train"].append(train_results)
            history["valid"].append(valid_results)
            improved = valid_results["Loss"] <= best_loss - 1e-6
            if improved:
                best_loss, best_epoch = valid_results["Loss"], epoch
                state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
                torch.save(state, self.args["model_save_path"])
            logger.info(
                f"{self.args['model_name']} epoch {epoch}: train loss {train_results['Loss']:.4f}, "
                f"valid loss {valid_results['Loss']:.4f}{' (best)' if improved else ''}"
            )
            if train_terms or valid_terms:
                logger.info(f"{self.args['model_name']} epoch {epoch} terms: train "
                            + " ".join(f"{k}={v:.4f}" for k, v in train_terms.items()) + "; valid "
                            + " ".join(f"{k}={v:.4f}" for k, v in valid_terms.items()))
            if epoch - best_epoch >= self.early_stop:
                break
        self.best_epoch = best_epoch
        return history if return_epoch_results else None

    @torch.no_grad()
    def do_test(self, model: nn.Module, dataloader, mode: str = "VAL", return_sample_results: bool = False):
        model.eval()
        rate = self.valid_rate() if mode == "VAL" else self.test_rate()
        preds, labels, losses, weights, ids, indexes = [], [], [], [], [], []
        for batch_data in dataloader:
            if return_sample_results:
                ids += [str(i) for i in batch_data["id"]]
                indexes += [int(i) for i in batch_data["index"]]
            batch = self.to_batch(batch_data)
            if rate > 0:
                batch = self.corrupt(batch, rate, self.run_seed)
            with self.precision.autocast():
                pred, loss = self.eval_step(model, batch, mode)
            preds.append(pred.float().cpu())
            labels.append(batch["labels"].cpu())
            losses.append(loss)
            weights.append(len(pred))
        results = self.metrics(torch.cat(preds), torch.cat(labels))
        # sample-weighted mean, so the loss does not depend on the batch size
        results["Loss"] = round(sum(l * w for l, w in zip(losses, weights)) / sum(weights), 4)
        if return_sample_results:  # MMSA's keys (Ids, SResults, Labels), plus the row of each sample
            results.update(Ids=ids, Index=indexes, SResults=torch.cat(preds).view(-1).numpy(),
                           Labels=torch.cat(labels).view(-1).numpy())
        return results
