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

_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_POSITION_SALT = 0x5BD1E995
_MASK64 = (1 << 64) - 1
_U53 = 1 << 53  # u = (hash >> 11) / 2**53


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic); returns a new array."""
    z = np.array(x, dtype=np.uint64, ndmin=1)  # a copy, then in place
    with np.errstate(over="ignore"):
        return _splitmix64_(z, np.empty_like(z)).reshape(np.shape(x))


def _splitmix64_(z: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """:func:`_splitmix64` in place on a uint64 array ``z`` (array integer ops wrap silently),
    ``scratch`` of the same shape for the shifts."""
    z += np.uint64(_GOLDEN)
    np.right_shift(z, np.uint64(30), out=scratch)
    z ^= scratch
    z *= np.uint64(_MIX1)
    np.right_shift(z, np.uint64(27), out=scratch)
    z ^= scratch
    z *= np.uint64(_MIX2)
    np.right_shift(z, np.uint64(31), out=scratch)
    z ^= scratch
    return z


def _splitmix64_int(x: int) -> int:
    z = (x + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def _modality_key(seed: int, modality: str) -> int:
    return _splitmix64_int((int(seed) & _MASK64) ^ (_MODALITY_CODE[modality] << 56))


def _row_keys(seed: int, modality: str, sample_index) -> np.ndarray:
    """(B,) uint64: the per-sample half of the hash, splitmix(key ^ splitmix(index))."""
    index = np.asarray(sample_index, dtype=np.int64).reshape(-1).astype(np.uint64)
    return _splitmix64(np.uint64(_modality_key(seed, modality)) ^ _splitmix64(index))


def _position_keys(length: int) -> np.ndarray:
    """(T,) uint64: the per-position half of the hash, splitmix(t + salt)."""
    return _splitmix64(np.arange(length, dtype=np.uint64) + np.uint64(_POSITION_SALT))


def position_bits(seed: int, modality: str, sample_index, length: int) -> np.ndarray:
    """The 64-bit hash of every (sample, position): (B, length) uint64. ``u = (bits >> 11) / 2**53``."""
    bits = _row_keys(seed, modality, sample_index)[:, None] ^ _position_keys(length)[None, :]
    return _splitmix64_(bits, np.empty_like(bits))


def position_uniforms(seed: int, modality: str, sample_index, length: int) -> np.ndarray:
    """u in [0, 1) of shape (B, length), a pure function of (seed, modality, index, position)."""
    bits = position_bits(seed, modality, sample_index, length)
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / _U53)


def _rate_column(rate: Rate, batch: int) -> np.ndarray:
    r = rate.detach().cpu().numpy() if isinstance(rate, torch.Tensor) else np.asarray(rate, dtype=np.float64)
    r = np.broadcast_to(r.astype(np.float64).reshape(-1, 1) if r.ndim else r, (batch, 1))
    if np.any(r < 0) or np.any(r > 1) or not np.all(np.isfinite(r)):
        raise ValueError(f"missing rate must lie in [0, 1], got {np.unique(r)[:5]}")
    return r


def rate_thresholds(rate: Rate, batch: int) -> np.ndarray:
    """(B, 1) int64 ``floor(r * 2**53)``: with ``m = bits >> 11`` (an integer below 2**53),
    ``u > r`` exactly when ``m > floor(r * 2**53)`` (r * 2**53 is exact in float64), so the masks
    need no float conversion."""
    return np.floor(_rate_column(rate, batch) * _U53).astype(np.int64)


def _hash_limits(thresholds: np.ndarray) -> np.ndarray:
    """uint64 limits with ``u > r`` exactly when ``bits > limit``: ``T << 11 | 0x7FF`` (T < 2**53;
    r = 1 gives 2**64 - 1, so nothing is kept)."""
    return (np.minimum(thresholds, _U53 - 1).astype(np.uint64) << np.uint64(11)) | np.uint64(0x7FF)


def _hash_keep(bits: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``u > r`` on 64-bit hashes (see :func:`rate_thresholds`)."""
    return bits > _hash_limits(thresholds)


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
def _signed(x: int) -> int:
    """A uint64 value as the int64 with the same bits."""
    return x - (1 << 64) if x >= 1 << 63 else x


def _shr(z: torch.Tensor, shift: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch's ``>>`` is arithmetic on signed integers)."""
    return (z >> shift) & ((1 << (64 - shift)) - 1)


def _splitmix64_torch(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64 on int64 tensors holding uint64 bits (int64 add/multiply wrap like uint64)."""
    z = z + _signed(_GOLDEN)
    z = (z ^ _shr(z, 30)) * _signed(_MIX1)
    z = (z ^ _shr(z, 27)) * _signed(_MIX2)
    return z ^ _shr(z, 31)


def position_bits_torch(seed: int, modality: str, sample_index, length: int, device=None) -> torch.Tensor:
    """:func:`position_bits` in torch on ``device``: (B, length) int64 with the same 64 bits."""
    index = torch.as_tensor(np.asarray(sample_index.cpu() if isinstance(sample_index, torch.Tensor)
                                       else sample_index, dtype=np.int64).reshape(-1), device=device)
    rows = _splitmix64_torch(_splitmix64_torch(index) ^ _signed(_modality_key(seed, modality)))
    positions = _splitmix64_torch(torch.arange(length, dtype=torch.int64, device=device) + _POSITION_SALT)
    return _splitmix64_torch(rows[:, None] ^ positions[None, :])


def _hash_keep_torch(bits: torch.Tensor, rate: Rate) -> torch.Tensor:
    thresholds = torch.as_tensor(rate_thresholds(rate, bits.shape[0]), device=bits.device)
    return _shr(bits, 11) > thresholds


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
    masks = keep_masks_torch(text, audio, vision, rate=rate, seed=seed, sample_index=sample_index,
                             audio_lengths=audio_lengths, vision_lengths=vision_lengths)
    return {name: mask.cpu().numpy() for name, mask in masks.items()}


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


def _block(rows: Optional[int], length: int) -> int:
    return (1 << 15) if rows is None else max(1, rows) * max(length, 1)


def hashed_keep(seed: int, modality: str, n: int, length: int, rate: Rate, *, lengths=None,
                block: int = 1 << 15) -> np.ndarray:
    """(n, length) bool ``u > r`` for sample indices 0..n-1; with ``lengths`` (n,) also ``t < length_b``.

    Hashed in blocks of about ``block`` positions whose uint64 buffers stay in cache and are reused; with
    ``lengths`` the rows go by increasing length and a block hashes only up to its longest row,
    so padding costs nothing.
    """
    rows = _row_keys(seed, modality, np.arange(n))
    positions = _position_keys(length)
    limits = _hash_limits(rate_thresholds(rate, n))
    keep = np.zeros((n, length), dtype=bool)
    if lengths is not None:
        lengths = np.clip(np.asarray(lengths, dtype=np.int64).reshape(-1), 0, length)
        order = np.argsort(lengths, kind="stable")
    chunk = max(1, block // max(length, 1))
    buffers = np.empty((2, min(chunk, n) * length), np.uint64)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        rows_of = slice(start, stop) if lengths is None else order[start:stop]
        width = length if lengths is None else int(lengths[rows_of].max(initial=0))
        if width == 0:
            continue
        shape = (stop - start, width)
        z, tmp = (b[: shape[0] * width].reshape(shape) for b in buffers)
        np.bitwise_xor(rows[rows_of, None], positions[None, :width], out=z)
        block = _splitmix64_(z, tmp) > limits[rows_of]
        if lengths is not None:
            block &= np.arange(width)[None, :] < lengths[rows_of, None]
        keep[rows_of, :width] = block
    return keep


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
