"""The counter-based hash behind every missingness mask (numpy and torch, bit-identical).

``u`` for (seed, modality, sample index, position) is SplitMix64 of a per-sample key XOR a
per-position key, so a mask depends on nothing but those four and the rate: not on batch size,
batch order, device or resumption, and a higher rate drops a superset of positions.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch

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


# ----------------------------------------------------------------------------- whole splits, in cache-sized blocks
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
