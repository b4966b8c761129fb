"""Evaluate one trained model under one test condition, through the model's own ``do_test``.

The test split is damaged once, as arrays (``dar_mmsa.data.corruption``, seeded by the run seed,
sample index = row of the split), in a shallow copy of MMSA's test ``MMDataset``; a
``DataLoader(shuffle=False)`` over that copy goes to ``trainer.do_test(model, loader, "TEST")``.
So every model -- ours or MMSA's -- sees exactly the same inputs, and the numbers do not depend
on the batch size or order. Our trainers' own test corruption stays off (``test_missing_rate``
is forced to 0 here).

Models whose MMSA loader has ``data_missing`` (TFR-Net) read ``text_m``/``audio_m``/``vision_m``
and ``*_missing_mask`` instead: those fields get the damaged inputs and the kept real positions,
while ``text``/``audio``/``vision`` stay complete. TFR-Net's prediction depends only on the
``*_m`` inputs and the real-position masks (text attention mask, ``audio_mask``,
``vision_mask``, all unchanged); the complete inputs and the missing masks feed only its
reconstruction loss, which its ``do_test`` computes but does not report.

Per-sample predictions are collected in the same pass as the metrics: our trainers' ``do_test``
returns them (``return_sample_results``: the very tensor the metrics were computed from); for
MMSA's trainers (whose ``do_test`` returns none, or breaks on a last batch of one) a forward hook on
the model records each batch's prediction (``"M"`` of a dict output, the first element of a tuple,
or the tensor), in loader order = row order. Models whose forward output is a dict with
``"importance"`` (the DERL-style model: (B, 6) over experts P_l, P_a, P_v, S_l, S_a, S_v) have
those vectors recorded by the same hook, so no model is run twice.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.corruption import MODALITIES, corrupt_arrays
from ..data.modality_drop import drop_arrays, random_presence
from .grid import Condition
from .predictions import EXPERTS

_CHUNK_BYTES = 32 << 20  # inputs damaged per step: the temporary tensors stay this small


def test_split(dataset) -> Dict[str, np.ndarray]:
    """The arrays of an MMSA ``MMDataset`` that the corruption reads (lengths only if it has them)."""
    split = {"text_bert": dataset.text, "audio": dataset.audio, "vision": dataset.vision}
    for key in ("audio_lengths", "vision_lengths"):
        if getattr(dataset, key, None) is not None:
            split[key] = np.asarray(getattr(dataset, key))
    return split


def corruption_buffer(dataset) -> Dict[str, np.ndarray]:
    """float32 arrays shaped like a test dataset's inputs, for every condition of a run to damage
    in turn (``out=``): one damaged copy of the test split per run, not one per condition."""
    return {key: np.empty(np.shape(getattr(dataset, attr)), dtype=np.float32)
            for key, attr in (("text_bert", "text"), ("audio", "audio"), ("vision", "vision"))}


def damage(split: Dict[str, np.ndarray], condition: Condition, seed: int, *, with_masks: bool = False,
           out: Optional[Dict[str, np.ndarray]] = None) -> dict:
    """Apply one condition to a split: ``text_bert``/``audio``/``vision`` (new, or written into
    ``out``) + ``*_keep`` masks."""
    if condition.protocol == "intra" and condition.masks == "lnln":
        from ..data.lnln_masks import lnln_corrupt_arrays

        return lnln_corrupt_arrays(split, rates=condition.rates, return_masks=with_masks)
    chunk = max(1, _CHUNK_BYTES // max(1, sum(split[k][:1].nbytes for k in ("text_bert", "audio", "vision"))))
    if condition.protocol == "intra":
        rates = dict(zip(MODALITIES, condition.rates))
        return corrupt_arrays(split, rate=rates, seed=seed, return_masks=with_masks, out=out)
    if condition.protocol == "subset":
        present = np.asarray(condition.present, dtype=bool)
    else:
        present = random_presence(seed, np.arange(len(split["text_bert"])), condition.rates[0])
    out = drop_arrays(split, present=present, return_masks=with_masks, out=out, chunk=chunk)
    out["present"] = np.broadcast_to(present.reshape(-1, 3), (len(split["text_bert"]), 3))
    return out


def damaged_dataset(dataset, condition: Condition, seed: int, *, data_missing: bool = False,
                    out: Optional[Dict[str, np.ndarray]] = None):
    """A shallow copy of MMSA's test dataset holding the damaged arrays (the original is untouched).

    With ``data_missing`` (TFR-Net) the damaged arrays go to ``text_m``/``audio_m``/``vision_m``
    and the kept positions to ``*_missing_mask``; otherwise they replace ``text``/``audio``/``vision``.
    """
    damaged = damage(test_split(dataset), condition, seed, with_masks=data_missing, out=out)
    out = copy.copy(dataset)
    if data_missing:
        out.text_m, out.audio_m, out.vision_m = damaged["text_bert"], damaged["audio"], damaged["vision"]
        for m in MODALITIES:
            setattr(out, f"{m}_missing_mask", damaged[f"{m}_keep"].astype(np.float32))
    else:
        out.text, out.audio, out.vision = damaged["text_bert"], damaged["audio"], damaged["vision"]
    out.benchmark_present = damaged.get("present")
    return out


@dataclass
class Evaluation:
    metrics: Dict[str, float]
    n_samples: int
    # index, id, label, prediction (+ the 6 expert importances): arrays, one row per test sample
    predictions: Optional[Dict[str, np.ndarray]] = None
    realised_drop_fraction: Optional[float] = None

    @property
    def importance(self) -> Optional[Dict[str, list]]:
        """The DERL-style expert importances per sample (with index, id, label, prediction), if any."""
        if self.predictions is None or EXPERTS[0] not in self.predictions:
            return None
        return {k: self.predictions[k].tolist() for k in ("index", "id", "label", "prediction", *EXPERTS)}


def plain_metrics(results: dict) -> Dict[str, float]:
    """MMSA's metric dict as plain Python floats (no numpy scalars), per-sample entries left out."""
    return {str(k): float(v) for k, v in results.items() if k not in SAMPLE_KEYS}


SAMPLE_KEYS = frozenset({"Ids", "Index", "SResults", "Labels", "Features"})


def prediction_of(output) -> torch.Tensor:
    """The sentiment prediction in a model's forward output (dict "M", first of a tuple, or the tensor)."""
    if isinstance(output, dict):
        return output["M"]
    if isinstance(output, (tuple, list)):
        return prediction_of(output[0])
    return output


def supports_importance(model, loader, device) -> bool:
    """Whether the model's forward output is a dict with an ``"importance"`` entry (probed on one batch)."""
    batch = next(iter(loader))
    with torch.no_grad():
        out = model(*(batch[k].to(device) for k in ("text", "audio", "vision")))
    return isinstance(out, dict) and "importance" in out


class OutputRecorder:
    """Forward hook recording each forward call's prediction (and ``"importance"``, if the output has it)."""

    def __init__(self, model):
        self.predictions: List[np.ndarray] = []
        self.importance: List[np.ndarray] = []
        self.handle = model.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        self.predictions.append(prediction_of(output).detach().float().cpu().reshape(-1).numpy())
        if isinstance(output, dict) and "importance" in output:
            self.importance.append(output["importance"].detach().float().cpu().numpy())

    def close(self):
        self.handle.remove()


def _is_ours(trainer) -> bool:
    from ..training.base import Trainer

    return isinstance(trainer, Trainer)


def sample_columns(dataset, predictions: np.ndarray, importance: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """The per-sample columns of a test split read in order: index, id, label (float32 as MMSA's
    loader gives it), prediction (+ expert importances)."""
    n = len(dataset)
    columns = {"index": np.arange(n, dtype=np.int64), "id": np.asarray([str(i) for i in dataset.ids]),
               "label": np.asarray(dataset.labels["M"], dtype=np.float32).reshape(-1),
               "prediction": np.asarray(predictions, dtype=np.float32).reshape(-1)}
    if importance is not None:
        for j, name in enumerate(EXPERTS):
            columns[name] = importance[:, j].astype(np.float32)
    return columns


def run_do_test(model, trainer, loader, dataset) -> tuple:
    """``trainer.do_test(model, loader, "TEST")`` and, from the same pass, the per-sample columns
    (None if the trainer's forward calls did not give one prediction per sample)."""
    recorder = OutputRecorder(model)
    try:
        if _is_ours(trainer):
            results = trainer.do_test(model, loader, mode="TEST", return_sample_results=True)
            predictions = np.asarray(results["SResults"], dtype=np.float32)
        else:
            results = trainer.do_test(model, loader, mode="TEST")
            predictions = np.concatenate(recorder.predictions) if recorder.predictions else np.zeros(0, np.float32)
    finally:
        recorder.close()
    importance = np.concatenate(recorder.importance) if recorder.importance else None
    if len(predictions) != len(dataset) or (importance is not None and len(importance) != len(dataset)):
        return results, None
    return results, sample_columns(dataset, predictions, importance)


def evaluate(model, trainer, dataset, condition: Condition, seed: int, *, batch_size: int, device,
             data_missing: bool = False, with_importance: bool = True,
             out: Optional[Dict[str, np.ndarray]] = None) -> Evaluation:
    """Metrics and per-sample predictions of ``model`` on the test ``dataset`` damaged by
    ``condition``, from one pass of the model's own ``do_test``; the damaged inputs go into
    ``out`` (:func:`corruption_buffer`) when given.

    ``with_importance`` is kept for callers of the old signature: importances are recorded
    whenever the model outputs them.
    """
    damaged = damaged_dataset(dataset, condition, seed, data_missing=data_missing, out=out)
    loader = DataLoader(damaged, batch_size=batch_size, shuffle=False, num_workers=0,
                        pin_memory=torch.device(device).type == "cuda")
    if hasattr(trainer, "args") and "test_missing_rate" in trainer.args:
        trainer.args["test_missing_rate"] = 0.0
    model.eval()
    results, columns = run_do_test(model, trainer, loader, damaged)
    realised = None
    if damaged.benchmark_present is not None:
        realised = float(1.0 - np.mean(damaged.benchmark_present))
    return Evaluation(plain_metrics(results), len(damaged), columns, realised)
