"""LNLN's ``generate_m`` (Haoyu-ha/LNLN, core/dataset.py), restated step by step as a test oracle.

Each modality: seed numpy's global generator with the fixed seed, draw ``uniform(size=(N, L))``
once for the whole split, keep ``u > rate`` on real positions; text keeps position 0 and position
``argmin(mask) - 1`` and writes 100 ([UNK]) into dropped real tokens; frames are multiplied by the
mask, so positions at or after the length are zero. ``torch.Tensor`` then makes them float32.
"""
import numpy as np


def reference_generate_m(modality, input_mask, input_len, missing_rate, missing_seed, mode):
    if mode == "text":
        input_len = np.argmin(input_mask, axis=1)
    else:
        input_mask = np.array([np.array([1] * length + [0] * (modality.shape[1] - length)) for length in input_len])
    np.random.seed(missing_seed)
    rate = missing_rate * np.ones((modality.shape[0], 1))
    missing_mask = (np.random.uniform(size=input_mask.shape) > rate.repeat(input_mask.shape[1], 1)) * input_mask
    if mode == "text":
        for i, row in enumerate(missing_mask):
            row[0] = row[input_len[i] - 1] = 1
        modality_m = missing_mask * modality + (100 * np.ones_like(modality)) * (input_mask - missing_mask)
    else:
        modality_m = missing_mask.reshape(modality.shape[0], modality.shape[1], 1) * modality
    return modality_m, missing_mask


def reference_split(split, rate, seed=1111):
    """LNLN's damaged text_bert / audio / vision (float32, as the model receives them) and masks."""
    text = np.asarray(split["text_bert"], dtype=np.float32)
    ids_m, text_mask = reference_generate_m(text[:, 0, :], text[:, 1, :], None, rate, seed, "text")
    text_m = np.concatenate([ids_m[:, None], text[:, 1:2, :], text[:, 2:3, :]], axis=1)
    out = {"text_bert": text_m.astype(np.float32), "text_keep": text_mask.astype(bool)}
    for m in ("audio", "vision"):
        frames = np.asarray(split[m], dtype=np.float32)
        frames_m, mask = reference_generate_m(frames, None, list(split[f"{m}_lengths"]), rate, seed, m)
        out[m], out[f"{m}_keep"] = frames_m.astype(np.float32), mask.astype(bool)
    return out
