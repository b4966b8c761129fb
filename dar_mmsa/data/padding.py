"""Padding of unaligned audio/vision streams: what a file's padding looks like, and the one rule the
protocol applies to it.

The rule (LNLN's ``generate_m``, which every reported LNLN/TFR-Net number went through): position
``t`` of sample ``i`` is real when ``t < lengths[i]``; every other position is padding and is zero
in what a model sees, at every missing rate, 0 included. :func:`apply_padding` enforces it on the
arrays MMSA loaded (lengths above T are clipped to T first), so a file whose frames past the
lengths are not zero runs, and every model sees what LNLN's protocol would give it on that file.

:func:`scan_padding` measures what the rule changes, for the one warning per file and split
(:func:`padding_message`): samples with non-zero frames at or after their length, lengths above
T, and a file that looks *front*-padded (real frames at the end of the sequence while the lengths
point at the start: the rule then zeroes real frames and keeps the padding).

All functions work on plain arrays (a split's dict), in chunks of at most ~32 MB.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional

import numpy as np

FRAME_MODALITIES = ("audio", "vision")
_CHUNK_BYTES = 32 << 20


def _row_chunks(n: int, row_bytes: int):
    rows = max(1, _CHUNK_BYTES // max(1, row_bytes))
    for start in range(0, n, rows):
        yield slice(start, min(n, start + rows))


@dataclass(frozen=True)
class PaddingScan:
    """What :func:`apply_padding` changes in one modality of one split."""

    n_samples: int
    t_len: int
    past_length_samples: int = 0  # samples with a non-zero frame at t >= length
    past_length_frames: int = 0
    over_length_samples: int = 0  # lengths above T (clipped to T)
    max_length: int = 0
    front_padded_samples: int = 0  # non-zero frames mostly in the last `length` steps
    partial_samples: int = 0  # samples with 0 < length < T (the only ones that can look front-padded)

    @property
    def looks_front_padded(self) -> bool:
        return self.partial_samples > 0 and 2 * self.front_padded_samples > self.partial_samples


def scan_padding(frames: np.ndarray, lengths) -> PaddingScan:
    """Measure one modality: ``frames`` (N, T, D), ``lengths`` (N,) (-inf counts as zero)."""
    lengths = np.asarray(lengths).astype(np.int64).reshape(-1)
    n, t_len = frames.shape[0], frames.shape[1]
    steps = np.arange(t_len)
    past_samples = past_frames = front = partial = 0
    for sl in _row_chunks(n, frames[:1].nbytes):
        chunk = frames[sl]
        real = (chunk != 0) & (chunk != -np.inf)
        non_zero = real.any(axis=2) if chunk.ndim == 3 else real
        length = np.clip(lengths[sl], 0, t_len)[:, None]
        past = non_zero & (steps[None, :] >= length)
        past_samples += int(past.any(axis=1).sum())
        past_frames += int(past.sum())
        inside = (non_zero & (steps[None, :] < length)).sum(axis=1)
        at_end = (non_zero & (steps[None, :] >= t_len - length)).sum(axis=1)
        is_partial = (length[:, 0] > 0) & (length[:, 0] < t_len)
        partial += int(is_partial.sum())
        front += int((is_partial & (at_end > inside)).sum())
    over = lengths > t_len
    return PaddingScan(n, t_len, past_samples, past_frames, int(over.sum()),
                       int(lengths.max()) if lengths.size else 0, front, partial)


def padding_findings(split_data: Mapping) -> Dict[str, PaddingScan]:
    """:func:`scan_padding` of every modality of a split that has ``<modality>_lengths``."""
    return {m: scan_padding(np.asarray(split_data[m]), split_data[f"{m}_lengths"])
            for m in FRAME_MODALITIES if f"{m}_lengths" in split_data}


def padding_message(path, split: str, findings: Mapping[str, PaddingScan]) -> Optional[str]:
    """The one warning of a file and split (None when the padding is already what the rule gives)."""
    parts = []
    for m, s in findings.items():
        if s.past_length_samples:
            parts.append(f"{s.past_length_samples} of {s.n_samples} samples have non-zero {m} frames at "
                         f"t >= {m}_lengths ({s.past_length_frames} frames)")
        if s.over_length_samples:
            parts.append(f"{s.over_length_samples} {m}_lengths exceed T = {s.t_len} (up to {s.max_length}): "
                         f"clipped to {s.t_len} under the padding rule")
        if s.looks_front_padded:
            parts.append(f"the {m} stream looks front-padded ({s.front_padded_samples} of {s.partial_samples} "
                         f"samples shorter than T have their non-zero frames in the last {m}_lengths steps, "
                         f"while the lengths count from t = 0): the protocol keeps the first length frames "
                         f"and zeroes the rest, so it would keep padding and drop real frames; re-export the "
                         f"file right-padded if that is not what you want")
    if not parts:
        return None
    return (f"{path} [split '{split}']: " + "; ".join(parts) + ". The protocol treats positions t >= length as "
            "padding (LNLN's generate_m): dar_mmsa's models see them as zeros at every missing rate, 0 included; "
            "MMSA's models see the file as stock MMSA loads it unless the run sets pad_past_lengths")


def apply_padding(frames: np.ndarray, lengths) -> np.ndarray:
    """Zero ``frames[i, t]`` for ``t >= lengths[i]`` in place; returns the lengths clipped to [0, T]
    (same dtype as given, an array).

    Only elements whose bits are not already +0.0 are written: on a copy-on-write memory map (the
    per-host feature cache, which holds the padded arrays) a write copies its page into the
    process, so a file already padded costs no private memory here."""
    given = np.asarray(lengths)
    t_len = frames.shape[1]
    clipped = np.clip(given, 0, t_len).astype(given.dtype, copy=False)
    as_int = clipped.astype(np.int64).reshape(-1)
    steps = np.arange(t_len)
    as_bits = np.dtype(f"u{frames.dtype.itemsize}")
    for sl in _row_chunks(frames.shape[0], frames[:1].nbytes):
        padded = steps[None, :] >= as_int[sl, None]
        if not padded.any():
            continue
        chunk = frames[sl]
        padded = padded.reshape(padded.shape + (1,) * (chunk.ndim - 2))
        wrong = padded & (chunk.view(as_bits) != 0)  # -0.0 counts as wrong: the rule writes +0.0
        if wrong.any():
            chunk[wrong] = 0
    return clipped


def apply_padding_to_dataset(dataset) -> None:
    """:func:`apply_padding` on the arrays of an MMSA ``MMDataset`` (unaligned: it has lengths)."""
    for m in FRAME_MODALITIES:
        lengths = getattr(dataset, f"{m}_lengths", None)
        if lengths is not None:
            setattr(dataset, f"{m}_lengths", apply_padding(getattr(dataset, m), lengths))
