"""Intra-modal missingness: the corruption of the DAR/LNLN robustness protocol.

For a sample, modality m and missing rate r, position t is kept when
``u[t] > r`` and ``t`` is a real position (text: attention mask; audio/vision:
``t < length``). Dropped text tokens become [UNK] (id 100) with [CLS] (position 0)
and the last real token ([SEP]) always kept; dropped audio/vision frames become
zero vectors. Attention masks, segment ids and lengths never change.

``u`` is not drawn from a stateful generator: it is a counter-based hash of
(seed, modality, sample index, position). So a mask depends on nothing but those
four and the rate, and a higher rate drops a superset of positions (nested masks): see
:mod:`.mask_hash`. Whole-modality removal is in :mod:`.modality_drop`.
"""
from __future__ import annotations

from typing import Mapping, Optional, Union

import numpy as np
import torch

from .mask_hash import Rate, _block, _hash_keep_torch, _rate_column, hashed_keep, position_bits_torch

UNK_ID = 100
MODALITIES = ("text", "audio", "vision")

def keep_mask(u: np.ndarray, real: np.ndarray, rate: Rate) -> np.ndarray:
    """keep[b, t] = (u > r_b) AND real[b, t]."""
    return (u > _rate_column(rate, u.shape[0])) & real


def _keep_cls_sep(keep: np.ndarray, real: np.ndarray) -> np.ndarray:
    """``keep`` plus [CLS] and the last real token of every non-empty row (real positions only)."""
    keep = keep.copy()
    n_real = real.sum(axis=1)
    rows = np.nonzero(n_real > 0)[0]
    keep[rows, 0] = True
    keep[rows, n_real[rows] - 1] = True
    return keep & real


# ----------------------------------------------------------------------------- torch (where the batch lives)
def _keep_cls_sep_torch(keep: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    n_real = real.sum(dim=1, keepdim=True)
    nonempty = n_real > 0
    keep = keep.clone()
    keep[:, :1] |= nonempty
    last = (n_real - 1).clamp(min=0)
    keep.scatter_(1, last, keep.gather(1, last) | nonempty)
    return keep & real


def text_real_positions(text: torch.Tensor) -> np.ndarray:
    return text[:, 1, :].detach().cpu().numpy() > 0


def frame_real_positions(lengths, batch: int, length: int) -> np.ndarray:
    lengths = np.asarray(lengths.cpu() if isinstance(lengths, torch.Tensor) else lengths).reshape(batch, 1)
    return np.arange(length)[None, :] < lengths


def _as_mask(mask, device) -> torch.Tensor:
    return mask.to(device) if isinstance(mask, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(mask)).to(device)


def corrupt_text(text: torch.Tensor, keep) -> torch.Tensor:
    """Replace the real tokens not in ``keep`` by [UNK], always keeping [CLS] and the last real token."""
    real = text[:, 1, :] > 0
    dropped = real & ~_keep_cls_sep_torch(_as_mask(keep, text.device), real)
    out = text.clone()
    out[:, 0, :] = torch.where(dropped, torch.full_like(out[:, 0, :], UNK_ID), out[:, 0, :])
    return out


def corrupt_frames(frames: torch.Tensor, keep, real) -> torch.Tensor:
    """Zero the real frames not in ``keep``; padding is already zero and stays so."""
    drop = _as_mask(real, frames.device) & ~_as_mask(keep, frames.device)
    return frames.masked_fill(drop.unsqueeze(-1), 0.0)


def keep_masks_torch(
    text: torch.Tensor,
    audio: torch.Tensor,
    vision: torch.Tensor,
    *,
    rate: Union[Rate, Mapping[str, Rate]],
    seed: int,
    sample_index,
    audio_lengths=None,
    vision_lengths=None,
) -> dict:
    """:func:`keep_masks` as bool tensors on the inputs' device, hashed there."""
    rates = rate if isinstance(rate, Mapping) else {m: rate for m in MODALITIES}
    batch, device = text.shape[0], text.device
    text_real = text[:, 1, :] > 0
    text_length = text_real.sum(dim=1)
    masks = {}
    for name, x, lengths in (("text", text, None), ("audio", audio, audio_lengths), ("vision", vision, vision_lengths)):
        length = x.shape[-1] if name == "text" else x.shape[1]
        if name == "text":
            real = text_real
        else:
            lengths = text_length if lengths is None else torch.as_tensor(lengths).to(device)
            real = torch.arange(length, device=device)[None, :] < lengths.reshape(batch, 1)
        keep = _hash_keep_torch(position_bits_torch(seed, name, sample_index, length, device), rates[name]) & real
        masks[name] = _keep_cls_sep_torch(keep, real) if name == "text" else keep
    return masks


def keep_masks(text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor, **options) -> dict:
    """The kept positions ``{"text": (B, L), "audio": (B, T_a), "vision": (B, T_v)}`` (bool arrays).

    True where a position is real and survives the corruption: for text that includes [CLS] and
    the last real token, which are always kept. Padding is never kept. Same keyword arguments as
    :func:`corrupt_batch` (``rate``, ``seed``, ``sample_index``, ``audio_lengths``, ``vision_lengths``).
    """
    return {name: mask.cpu().numpy() for name, mask in keep_masks_torch(text, audio, vision, **options).items()}


def corrupt_batch(
    text: torch.Tensor,
    audio: torch.Tensor,
    vision: torch.Tensor,
    *,
    rate: Union[Rate, Mapping[str, Rate]],
    seed: int,
    sample_index,
    audio_lengths=None,
    vision_lengths=None,
):
    """Apply the protocol's intra-modal corruption to one batch, on the batch's device (the masks
    are hashed there too: no mask crosses between CPU and GPU).

    Args:
        text: (B, 3, L) token ids / attention mask / segment ids (MMSA ``text_bert``).
        audio, vision: (B, T, D) zero-padded frames.
        rate: a missing rate in [0, 1] for all modalities, a (B,) array of per-sample
            rates, or a mapping ``{"text": r_l, "audio": r_a, "vision": r_v}`` of either.
        seed: the run seed; masks are a function of (seed, sample, modality, rate).
        sample_index: (B,) dataset indices of the samples (MMSA's ``batch['index']``).
        audio_lengths, vision_lengths: real lengths; ``None`` (aligned data) means the
            text length, as MMSA's loader does for aligned features.

    Returns:
        ``(text_m, audio_m, vision_m)``: new tensors; inputs are not modified.
        With rate 0 every output is bit-identical to its input.
    """
    masks = keep_masks_torch(text, audio, vision, rate=rate, seed=seed, sample_index=sample_index,
                             audio_lengths=audio_lengths, vision_lengths=vision_lengths)
    real = text[:, 1, :] > 0
    text_m = text.clone()
    text_m[:, 0, :] = torch.where(real & ~masks["text"], torch.full_like(text_m[:, 0, :], UNK_ID), text_m[:, 0, :])
    out = [text_m]
    text_length = real.sum(dim=1)
    for name, x, lengths in (("audio", audio, audio_lengths), ("vision", vision, vision_lengths)):
        lengths = text_length if lengths is None else torch.as_tensor(lengths).to(x.device)
        frame_real = torch.arange(x.shape[1], device=x.device)[None, :] < lengths.reshape(-1, 1)
        out.append(x.masked_fill((frame_real & ~masks[name]).unsqueeze(-1), 0.0))
    return tuple(out)


# ----------------------------------------------------------------------------- numpy (whole splits)
_SPLIT_KEYS = ("text_bert", "audio", "vision")


def _check_out(out: Mapping[str, np.ndarray], split: Mapping[str, np.ndarray]) -> dict:
    for key in _SPLIT_KEYS:
        buf = out.get(key) if isinstance(out, Mapping) else None
        if (buf is None or buf.shape != np.shape(split[key]) or buf.dtype != np.float32
                or not buf.flags.c_contiguous or not buf.flags.writeable):
            raise ValueError(f"out['{key}'] must be a writable C-contiguous float32 array of shape "
                             f"{np.shape(split[key])}: pass buffers like np.empty_like(split['{key}'], np.float32)")
        if buf is not split[key] and np.may_share_memory(buf, split[key]):
            raise ValueError(f"out['{key}'] overlaps split['{key}'] without being it: pass separate buffers")
    return dict(out)


def _outputs(split: Mapping[str, np.ndarray], out: Optional[Mapping[str, np.ndarray]]) -> dict:
    """The float32 arrays a whole-split function writes into: ``out``'s (checked) or new ones."""
    if out is None:
        return {k: np.empty(np.shape(split[k]), dtype=np.float32) for k in _SPLIT_KEYS}
    return _check_out(out, split)


def corrupt_arrays(
    split: Mapping[str, np.ndarray],
    *,
    rate: Union[Rate, Mapping[str, Rate]],
    seed: int,
    chunk: Optional[int] = None,
    return_masks: bool = False,
    out: Mapping[str, np.ndarray] = None,
) -> dict:
    """Corrupt a whole split of a feature pickle (``text_bert``, ``audio``, ``vision``).

    Sample indices are the row numbers of the split, so the result equals what
    :func:`corrupt_batch` gives any batch of it. Returns float32 arrays: new ones, or the buffers
    ``out`` (``{"text_bert", "audio", "vision"}``: C-contiguous float32 of the split's shapes,
    reused across rates; one may be the split's own array to corrupt it in place). With
    ``return_masks`` also ``text_keep``/``audio_keep``/``vision_keep``, the kept real positions
    (:func:`keep_masks`) as bool arrays.

    Cost: the hash runs on the (samples x positions) grid in blocks that stay in cache
    (:func:`hashed_keep`; ``chunk`` rows per block if given), and each feature array is read and written once
    (``bench/corruption.py`` measures it against one elementwise multiply).
    """
    rates = rate if isinstance(rate, Mapping) else {m: rate for m in MODALITIES}
    n = len(split["text_bert"])
    out = _outputs(split, out)
    text = out["text_bert"]
    if text is not split["text_bert"]:
        np.copyto(text, split["text_bert"], casting="unsafe")
    real = text[:, 1, :] > 0
    text_length = real.sum(axis=1)
    for m, key in zip(MODALITIES, _SPLIT_KEYS):
        if m == "text":
            keep = hashed_keep(seed, m, n, text.shape[-1], rates[m], block=_block(chunk, text.shape[-1]))
            keep = _keep_cls_sep(keep & real, real)
            text[:, 0, :][real & ~keep] = UNK_ID
        else:
            lengths = split.get(f"{key}_lengths")
            lengths = text_length if lengths is None else np.asarray(lengths).reshape(-1)
            frame_real = np.arange(np.shape(split[key])[1])[None, :] < lengths[:, None]
            keep = hashed_keep(seed, m, n, frame_real.shape[1], rates[m], lengths=lengths,
                               block=_block(chunk, frame_real.shape[1]))
            _mask_frames(split[key], out[key], keep | ~frame_real)
        if return_masks:
            out[f"{m}_keep"] = keep
    return out


def _mask_frames(source: np.ndarray, target: np.ndarray, retain: np.ndarray) -> None:
    """target[b, t] = source[b, t] where ``retain``, else +0.0 (like ``masked_fill``), in one pass:
    float32 bits AND all-ones / zero words (exact, NaN-safe, never -0.0). ``target`` may be ``source``.
    torch's broadcasting AND runs at copy speed; numpy's is ~2x slower on these shapes."""
    if source.dtype == np.float32 and source.flags.c_contiguous and source.flags.writeable:
        word = torch.from_numpy(retain.astype(np.int32)).neg_()  # 1 -> -1: all 32 bits set
        torch.bitwise_and(torch.from_numpy(source).view(torch.int32), word[..., None],
                          out=torch.from_numpy(target).view(torch.int32))
    else:
        np.copyto(target, source, casting="unsafe")
        target.reshape(-1, target.shape[-1])[np.flatnonzero(~retain)] = 0.0
