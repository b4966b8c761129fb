"""Inter-modal missingness: whole modalities removed per sample (the protocol's inter conditions)."""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import torch

from .corruption import MODALITIES, _keep_cls_sep, _outputs, corrupt_text, frame_real_positions, text_real_positions
from .mask_hash import _rate_column, position_uniforms


def _presence(present, batch: int) -> np.ndarray:
    """``present`` ((3,) or (B, 3), bool array or tensor) as a (B, 3) bool array."""
    present = np.asarray(present.cpu() if isinstance(present, torch.Tensor) else present, dtype=bool)
    return np.broadcast_to(present.reshape(-1, 3), (batch, 3))


def drop_modalities(text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor, present):
    """Inter-modal missingness: remove whole modalities per sample.

    ``present`` is a (B, 3) boolean array over (text, audio, vision). An absent text keeps only
    [CLS] and the last real token ([SEP]), every other real token becoming [UNK]; absent audio or
    vision becomes all zeros. Present modalities are returned unchanged.
    """
    batch = text.shape[0]
    present = _presence(present, batch)
    text_m = corrupt_text(text, text_real_positions(text) & present[:, :1])
    audio_m, vision_m = (x.masked_fill(torch.from_numpy(~present[:, col].copy()).to(x.device)[:, None, None], 0.0)
                         for col, x in ((1, audio), (2, vision)))
    return text_m, audio_m, vision_m


def presence_keep_masks(text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor, present, *,
                        audio_lengths=None, vision_lengths=None) -> dict:
    """Kept real positions under :func:`drop_modalities` (same format as :func:`keep_masks`):
    all real positions of a present modality; [CLS] and [SEP] of an absent text; nothing of an
    absent audio or vision."""
    batch = text.shape[0]
    present = _presence(present, batch)
    text_real = text_real_positions(text)
    text_length = text_real.sum(axis=1)
    masks = {"text": _keep_cls_sep(text_real & present[:, :1], text_real)}
    for col, name, x, lengths in ((1, "audio", audio, audio_lengths), (2, "vision", vision, vision_lengths)):
        real = frame_real_positions(text_length if lengths is None else lengths, batch, x.shape[1])
        masks[name] = real & present[:, col:col + 1]
    return masks


def drop_arrays(split: Mapping[str, np.ndarray], *, present, chunk: int = 1024, return_masks: bool = False,
                out: Optional[Mapping[str, np.ndarray]] = None) -> dict:
    """:func:`drop_modalities` over a whole split (``present``: (3,) or (N, 3) bool), like
    :func:`corrupt_arrays` (``out`` included); with ``return_masks`` also the ``*_keep`` masks of
    :func:`presence_keep_masks`."""
    n = len(split["text_bert"])
    present = _presence(present, n)
    out = _outputs(split, out)
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        tensors = [torch.from_numpy(np.asarray(split[k][sl], dtype=np.float32))
                   for k in ("text_bert", "audio", "vision")]
        t, a, v = drop_modalities(*tensors, present[sl])
        out["text_bert"][sl], out["audio"][sl], out["vision"][sl] = t.numpy(), a.numpy(), v.numpy()
        if return_masks:
            lengths = {k: (np.asarray(split[k])[sl] if k in split else None)
                       for k in ("audio_lengths", "vision_lengths")}
            masks = presence_keep_masks(*tensors, present[sl], **lengths)
            for name, mask in masks.items():
                out.setdefault(f"{name}_keep", np.zeros((n,) + mask.shape[1:], dtype=bool))[sl] = mask
    return out


# Whole-modality draws use their own stream: the seed XOR this tag ("MODDROP"), so they are
# independent of the position masks drawn with the run seed itself.
_MODALITY_DROP_TAG = 0x4D4F4444524F50


def random_presence(seed: int, sample_index, rate: float) -> np.ndarray:
    """Random whole-modality drop: a (B, 3) bool array over (text, audio, vision), True = present.

    Each modality of each sample is dropped when its uniform ``u < rate`` (u a pure function of
    (seed, sample index, modality), like the position masks). A sample that would lose all three
    keeps the one with the largest ``u``, so at least one modality is always present. ``rate`` is
    thus the per-modality drop probability before that rule; the realised fraction of dropped
    modality slots is ``rate - rate**3 / 3`` in expectation (at most 2/3 can be dropped while
    keeping one). Masks are nested in the rate.
    """
    rate = float(_rate_column(rate, 1)[0, 0])
    u = np.stack([position_uniforms(seed ^ _MODALITY_DROP_TAG, m, sample_index, 1)[:, 0] for m in MODALITIES],
                 axis=1)
    present = u >= rate
    rescue = ~present.any(axis=1)
    present[rescue, u[rescue].argmax(axis=1)] = True
    return present


def expected_drop_fraction(rate: float) -> float:
    """Expected fraction of modality slots :func:`random_presence` drops at ``rate``."""
    return rate - rate ** 3 / 3.0
