"""Intra-modal missingness: the corruption of the DAR/LNLN robustness protocol.

For a sample, modality m and missing rate r, position t is kept when
``u[t] > r`` and ``t`` is a real position (text: attention mask; audio/vision:
``t < length``). Dropped text tokens become [UNK] (id 100) with [CLS] (position 0)
and the last real token ([SEP]) always kept; dropped audio/vision frames become
zero vectors. Attention masks, segment ids and lengths never change.

``u`` is not drawn from a stateful generator: it is a counter-based hash of
(seed, modality, sample index, position). So a mask depends on nothing but those
four and the rate -- not on batch size, batch order, device or whether a run was
resumed -- and a higher rate drops a superset of positions (nested masks).
"""
from __future__ import annotations

from typing import Mapping, Optional, Union

import numpy as np
import torch

UNK_ID = 100
MODALITIES = ("text", "audio", "vision")
_MODALITY_CODE = {"text": 1, "audio": 2, "vision": 3}

Rate = Union[float, np.ndarray, torch.Tensor]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def position_uniforms(seed: int, modality: str, sample_index, length: int) -> np.ndarray:
    """u in [0, 1) of shape (B, length), a pure function of (seed, modality, index, position)."""
    index = np.asarray(sample_index, dtype=np.int64).reshape(-1).astype(np.uint64)
    key = _splitmix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) ^ np.uint64(_MODALITY_CODE[modality] << 56))
    row = _splitmix64(key ^ _splitmix64(index))[:, None]
    pos = np.arange(length, dtype=np.uint64)[None, :]
    bits = _splitmix64(row ^ _splitmix64(pos + np.uint64(0x5BD1E995)))
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _rate_column(rate: Rate, batch: int) -> np.ndarray:
    r = rate.detach().cpu().numpy() if isinstance(rate, torch.Tensor) else np.asarray(rate, dtype=np.float64)
    r = np.broadcast_to(r.astype(np.float64).reshape(-1, 1) if r.ndim else r, (batch, 1))
    if np.any(r < 0) or np.any(r > 1) or not np.all(np.isfinite(r)):
        raise ValueError(f"missing rate must lie in [0, 1], got {np.unique(r)[:5]}")
    return r


def keep_mask(u: np.ndarray, real: np.ndarray, rate: Rate) -> np.ndarray:
    """keep[b, t] = (u > r_b) AND real[b, t]."""
    return (u > _rate_column(rate, u.shape[0])) & real


def text_real_positions(text: torch.Tensor) -> np.ndarray:
    return text[:, 1, :].detach().cpu().numpy() > 0


def frame_real_positions(lengths, batch: int, length: int) -> np.ndarray:
    lengths = np.asarray(lengths.cpu() if isinstance(lengths, torch.Tensor) else lengths).reshape(batch, 1)
    return np.arange(length)[None, :] < lengths


def corrupt_text(text: torch.Tensor, keep: np.ndarray) -> torch.Tensor:
    """Replace the real tokens not in ``keep`` by [UNK], always keeping [CLS] and the last real token."""
    real = text_real_positions(text)
    dropped = torch.from_numpy(real & ~_keep_cls_sep(keep, real)).to(text.device)
    out = text.clone()
    out[:, 0, :] = torch.where(dropped, torch.full_like(out[:, 0, :], UNK_ID), out[:, 0, :])
    return out


def corrupt_frames(frames: torch.Tensor, keep: np.ndarray, real: np.ndarray) -> torch.Tensor:
    """Zero the real frames not in ``keep``; padding is already zero and stays so."""
    drop = torch.from_numpy(real & ~keep).to(frames.device)
    return frames.masked_fill(drop.unsqueeze(-1), 0.0)


def keep_masks(
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
    """The kept positions ``{"text": (B, L), "audio": (B, T_a), "vision": (B, T_v)}`` (bool arrays).

    True where a position is real and survives the corruption: for text that includes [CLS] and
    the last real token, which are always kept. Padding is never kept. Same arguments as
    :func:`corrupt_batch`.
    """
    rates = rate if isinstance(rate, Mapping) else {m: rate for m in MODALITIES}
    batch = text.shape[0]
    text_real = text_real_positions(text)
    text_length = text_real.sum(axis=1)
    masks = {}
    for name, x, lengths in (("text", text, None), ("audio", audio, audio_lengths), ("vision", vision, vision_lengths)):
        length = x.shape[-1] if name == "text" else x.shape[1]
        if name == "text":
            real = text_real
        else:
            real = frame_real_positions(text_length if lengths is None else lengths, batch, length)
        keep = keep_mask(position_uniforms(seed, name, sample_index, length), real, rates[name])
        masks[name] = _keep_cls_sep(keep, real) if name == "text" else keep
    return masks


def _keep_cls_sep(keep: np.ndarray, real: np.ndarray) -> np.ndarray:
    """``keep`` plus [CLS] and the last real token of every non-empty row (real positions only)."""
    keep = keep.copy()
    n_real = real.sum(axis=1)
    rows = np.nonzero(n_real > 0)[0]
    keep[rows, 0] = True
    keep[rows, n_real[rows] - 1] = True
    return keep & real


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
    """Apply the protocol's intra-modal corruption to one batch.

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
    masks = keep_masks(text, audio, vision, rate=rate, seed=seed, sample_index=sample_index,
                       audio_lengths=audio_lengths, vision_lengths=vision_lengths)
    batch = text.shape[0]
    text_real = text_real_positions(text)
    text_length = text_real.sum(axis=1)
    out = [corrupt_text(text, masks["text"])]
    for name, x, lengths in (("audio", audio, audio_lengths), ("vision", vision, vision_lengths)):
        real = frame_real_positions(text_length if lengths is None else lengths, batch, x.shape[1])
        out.append(corrupt_frames(x, masks[name], real))
    return tuple(out)


def _outputs(split: Mapping[str, np.ndarray], out: Optional[Mapping[str, np.ndarray]]) -> dict:
    """The float32 arrays a whole-split corruption writes into: ``out``'s (checked) or new ones."""
    keys = ("text_bert", "audio", "vision")
    if out is None:
        return {k: np.empty_like(split[k], dtype=np.float32) for k in keys}
    for k in keys:
        if out[k].shape != np.shape(split[k]) or out[k].dtype != np.float32 or np.may_share_memory(out[k], split[k]):
            raise ValueError(f"out['{k}'] must be a float32 array of shape {np.shape(split[k])} apart from the "
                             f"split, got {out[k].dtype} {out[k].shape}")
    return {k: out[k] for k in keys}


def corrupt_arrays(
    split: Mapping[str, np.ndarray],
    *,
    rate: Union[Rate, Mapping[str, Rate]],
    seed: int,
    chunk: int = 1024,
    return_masks: bool = False,
    out: Optional[Mapping[str, np.ndarray]] = None,
) -> dict:
    """Corrupt a whole split of a feature pickle (``text_bert``, ``audio``, ``vision``).

    Sample indices are the row numbers of the split, so the result equals what
    :func:`corrupt_batch` gives any batch of it. Returns new float32 arrays -- or, with ``out``
    (float32 arrays of the split's shapes, not the split's own), fills and returns those; with
    ``return_masks`` also ``text_keep``/``audio_keep``/``vision_keep``, the kept real positions
    (:func:`keep_masks`) as bool arrays.
    """
    n = len(split["text_bert"])
    out = _outputs(split, out)
    if return_masks:
        out.update({f"{m}_keep": np.zeros(np.shape(split[k])[:2] if m != "text" else
                                          (n, np.shape(split[k])[-1]), dtype=bool)
                    for m, k in (("text", "text_bert"), ("audio", "audio"), ("vision", "vision"))})
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        lengths = {
            k: (np.asarray(split[k])[sl] if k in split else None) for k in ("audio_lengths", "vision_lengths")
        }
        tensors = [torch.from_numpy(np.asarray(split[k][sl], dtype=np.float32))
                   for k in ("text_bert", "audio", "vision")]
        kwargs = dict(rate=rate, seed=seed, sample_index=np.arange(sl.start, sl.stop),
                      audio_lengths=lengths["audio_lengths"], vision_lengths=lengths["vision_lengths"])
        t, a, v = corrupt_batch(*tensors, **kwargs)
        out["text_bert"][sl], out["audio"][sl], out["vision"][sl] = t.numpy(), a.numpy(), v.numpy()
        if return_masks:
            for name, mask in keep_masks(*tensors, **kwargs).items():
                out[f"{name}_keep"][sl] = mask
    return out


def drop_modalities(text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor, present):
    """Inter-modal missingness: remove whole modalities per sample.

    ``present`` is a (B, 3) boolean array over (text, audio, vision). An absent text keeps only
    [CLS] and the last real token ([SEP]), every other real token becoming [UNK]; absent audio or
    vision becomes all zeros. Present modalities are returned unchanged.
    """
    present = np.asarray(present.cpu() if isinstance(present, torch.Tensor) else present, dtype=bool)
    batch = text.shape[0]
    present = np.broadcast_to(present.reshape(-1, 3), (batch, 3))
    text_m = corrupt_text(text, text_real_positions(text) & present[:, :1])
    audio_m, vision_m = (x.masked_fill(torch.from_numpy(~present[:, col].copy()).to(x.device)[:, None, None], 0.0)
                         for col, x in ((1, audio), (2, vision)))
    return text_m, audio_m, vision_m


def presence_keep_masks(text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor, present, *,
                        audio_lengths=None, vision_lengths=None) -> dict:
    """Kept real positions under :func:`drop_modalities` (same format as :func:`keep_masks`):
    all real positions of a present modality; [CLS] and [SEP] of an absent text; nothing of an
    absent audio or vision."""
    present = np.asarray(present.cpu() if isinstance(present, torch.Tensor) else present, dtype=bool)
    batch = text.shape[0]
    present = np.broadcast_to(present.reshape(-1, 3), (batch, 3))
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
    present = np.broadcast_to(np.asarray(present, dtype=bool).reshape(-1, 3), (n, 3))
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
