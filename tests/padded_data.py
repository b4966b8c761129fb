"""Synthetic MOSI roots whose unaligned pickle breaks the right-padding convention in one way each."""
import pickle
import shutil
from pathlib import Path

import numpy as np

from dar_mmsa.data.synthetic import SPLITS, feature_path

VARIANTS = ("past_lengths", "front_padded", "over_length")


def _past_lengths(split):
    """Non-zero audio and vision frames after the length, in every other sample."""
    for m in ("audio", "vision"):
        frames, lengths = split[m].copy(), split[f"{m}_lengths"]
        for i in range(0, len(frames), 2):
            frames[i, lengths[i]:] = 0.25
        split[m] = frames


def _front_padded(split):
    """Real frames moved to the end of the sequence; the lengths still count from t = 0."""
    for m in ("audio", "vision"):
        frames, lengths = split[m], split[f"{m}_lengths"]
        moved = np.zeros_like(frames)
        t_len = frames.shape[1]
        for i, length in enumerate(lengths):
            moved[i, t_len - length:] = frames[i, :length]
        split[m] = moved


def _over_length(split):
    """The first sample's audio length is T + 7."""
    lengths = split["audio_lengths"].copy()
    lengths[0] = split["audio"].shape[1] + 7
    split["audio_lengths"] = lengths


def write_variant(source_root, root, variant):
    """Copy ``source_root`` (a synthetic MOSI root) to ``root`` with the unaligned pickle changed."""
    root = Path(root)
    shutil.copytree(source_root, root)
    path = feature_path(root, "mosi", aligned=False)
    with open(path, "rb") as f:
        data = pickle.load(f)
    change = {"past_lengths": _past_lengths, "front_padded": _front_padded, "over_length": _over_length}[variant]
    for split in SPLITS:
        data[split] = dict(data[split])
        change(data[split])
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)
    return root
