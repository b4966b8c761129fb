"""LNLN's reference masks: the intra-modal corruption of LNLN's ``MMDataset.generate_m``
(``core/dataset.py`` of Haoyu-ha/LNLN), the inputs its and TFR-Net's reported numbers were measured on.

Semantics, restated (the harness's ``--masks lnln``):

* per modality, numpy's legacy generator is seeded with the *same* fixed seed (LNLN's config seed,
  1111, whatever the training seed) and draws one ``uniform(size=(N, L))`` over the whole split, in
  sample order; position ``t`` of sample ``i`` is kept when ``u[i, t] > rate`` and it is real. So
  the three modalities share one stream (cross-modally correlated masks), and a mask depends on
  the split's size and order;
* text: real = the attention mask; position 0 and position ``argmin(mask) - 1`` (the [SEP] of a
  right-padded row, the last column of a full row) are always kept; ids become
  ``keep * ids + 100 * (mask - keep)`` ([UNK] = 100 for dropped real tokens); mask and segment ids
  are unchanged;
* audio / vision: real = ``t < length``; frames become ``keep * frames``, so positions at or after
  the length are zero at every rate, 0 included.

Differences from ours (``dar_mmsa.data.corruption``): ours hashes (run seed, modality, sample
index, position) into each uniform, so masks are independent across modalities, do not depend on
the split's size or order, and change with the training seed.

Aligned files have no lengths; audio/vision positions are then real up to the text length
(MMSA's convention; LNLN reads lengths from unaligned files only).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

LNLN_SEED = 1111
UNK_ID = 100


def lnln_uniforms(seed: int, shape) -> np.ndarray:
    """What ``np.random.seed(seed); np.random.uniform(size=shape)`` gives, without touching numpy's global state."""
    return np.random.RandomState(seed).uniform(size=shape)


def _rate_column(rate, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(rate, dtype=np.float64).reshape(-1, 1), (n, 1))


def lnln_text(text_bert: np.ndarray, rate, seed: int = LNLN_SEED):
    """Damaged ``text_bert`` (N, 3, L) and the kept mask (N, L) as float32 (LNLN's ``missing_mask``)."""
    ids, mask = text_bert[:, 0, :], text_bert[:, 1, :]
    n, length = ids.shape
    keep = (lnln_uniforms(seed, (n, length)) > _rate_column(rate, n)) * mask
    first_pad = np.argmin(mask, axis=1)
    rows = np.arange(n)
    keep[rows, 0] = 1
    keep[rows, first_pad - 1] = 1  # -1 -> the last column when the row has no padding
    out = text_bert.copy()
    out[:, 0, :] = keep * ids + (UNK_ID * np.ones_like(ids)) * (mask - keep)
    return out, keep


def lnln_frames(frames: np.ndarray, lengths, rate, seed: int = LNLN_SEED):
    """Damaged frames (N, T, D) and the kept mask (N, T) as int64 (positions >= length always dropped)."""
    n, t_len = frames.shape[0], frames.shape[1]
    lengths = np.clip(np.asarray(lengths).astype(np.int64).reshape(-1), 0, t_len)
    real = (np.arange(t_len)[None, :] < lengths[:, None]).astype(np.int64)
    keep = (lnln_uniforms(seed, (n, t_len)) > _rate_column(rate, n)) * real
    return (keep[:, :, None] * frames).astype(frames.dtype), keep


def lnln_corrupt_arrays(split: Mapping[str, np.ndarray], *, rates: Sequence[float], seed: int = LNLN_SEED,
                        return_masks: bool = False) -> dict:
    """LNLN's corruption of a whole split at ``rates`` = (text, audio, vision); same output format as
    :func:`dar_mmsa.data.corruption.corrupt_arrays` (float32 arrays, ``*_keep`` bool masks)."""
    text_bert = np.asarray(split["text_bert"], dtype=np.float32)
    text_out, text_keep = lnln_text(text_bert, rates[0], seed)
    text_length = text_bert[:, 1, :].sum(axis=1).astype(np.int64)
    out = {"text_bert": text_out}
    masks = {"text": text_keep}
    for name, rate in (("audio", rates[1]), ("vision", rates[2])):
        lengths = split.get(f"{name}_lengths")
        frames = np.asarray(split[name], dtype=np.float32)
        out[name], masks[name] = lnln_frames(frames, text_length if lengths is None else lengths, rate, seed)
    if return_masks:
        out.update({f"{m}_keep": mask.astype(bool) for m, mask in masks.items()})
    return out
