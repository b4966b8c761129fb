#!/usr/bin/env python
"""Cost of corrupting a whole test split, against the memory floor and against generate_m.

For MOSI-test-sized and MOSEI-test-sized arrays (random features, real-looking lengths), one run
times, at one missing rate:

* floor: one elementwise multiply of the same three arrays (``x * 1``: read once, write once);
* ``corrupt_arrays`` (new arrays, and into reused ``out=`` buffers);
* the previous implementation (numpy uint64 hash with temporaries, torch masking per chunk),
  restated here;
* LNLN/MMSA's ``generate_m`` algorithm (a Python loop per sample for the length masks and the
  [CLS]/[SEP] fix, ``np.random.uniform`` masks, a mask multiply), restated here;
* the hash alone: numpy (``position_bits``) vs torch on the CPU (``position_bits_torch``).

Targets: ``corrupt_arrays`` within 2x of the floor and at least 5x faster than ``generate_m``.
Each figure is the best CPU time of ``--repeats`` interleaved rounds (the machine may be shared);
the previous implementation and generate_m get a third of the rounds.

    python bench/corruption.py
    python bench/corruption.py --datasets mosi --repeats 5 --rate 0.3
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# unaligned test splits: samples, text length, (frames, features) of audio and vision
SHAPES = {"mosi": (686, 50, (375, 5), (500, 20)), "mosei": (4659, 50, (500, 74), (500, 35))}


def make_split(dataset: str, seed: int = 0) -> dict:
    n, length, (ta, da), (tv, dv) = SHAPES[dataset]
    rng = np.random.default_rng(seed)
    n_tokens = rng.integers(4, length + 1, n)
    text = np.zeros((n, 3, length), dtype=np.float32)
    positions = np.arange(length)[None]
    text[:, 0] = np.where(positions < n_tokens[:, None], rng.integers(1000, 30000, (n, length)), 0)
    text[:, 0, 0], text[np.arange(n), 0, n_tokens - 1] = 101, 102
    text[:, 1] = positions < n_tokens[:, None]
    split = {"text_bert": text}
    for key, t, d in (("audio", ta, da), ("vision", tv, dv)):
        lengths = rng.integers(t // 4, t + 1, n)
        x = rng.standard_normal((n, t, d), dtype=np.float32)
        x[np.arange(t)[None, :] >= lengths[:, None]] = 0.0
        split[key], split[f"{key}_lengths"] = x, lengths
    return split


# ----------------------------------------------------------------------------- previous implementation
def _old_splitmix64(x):
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _old_uniforms(seed, modality, index, length):
    code = {"text": 1, "audio": 2, "vision": 3}[modality]
    key = _old_splitmix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) ^ np.uint64(code << 56))
    row = _old_splitmix64(key ^ _old_splitmix64(np.asarray(index, dtype=np.int64).astype(np.uint64)))[:, None]
    bits = _old_splitmix64(row ^ _old_splitmix64(np.arange(length, dtype=np.uint64)[None, :] + np.uint64(0x5BD1E995)))
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _old_keep_cls_sep(keep, real):
    keep = keep.copy()
    n_real = real.sum(axis=1)
    rows = np.nonzero(n_real > 0)[0]
    keep[rows, 0] = True
    keep[rows, n_real[rows] - 1] = True
    return keep & real


def old_corrupt_arrays(split, rate, seed, chunk=1024):
    """The previous whole-split path: per chunk, torch tensors, numpy masks (twice), torch masking."""
    import torch

    n = len(split["text_bert"])
    out = {k: np.empty_like(split[k], dtype=np.float32) for k in ("text_bert", "audio", "vision")}
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        index = np.arange(sl.start, sl.stop)
        text, audio, vision = (torch.from_numpy(np.asarray(split[k][sl], dtype=np.float32))
                               for k in ("text_bert", "audio", "vision"))
        text_real = text[:, 1, :].numpy() > 0
        text_length = text_real.sum(1)
        masks = {}
        for name, x in (("text", text), ("audio", audio), ("vision", vision)):
            length = x.shape[-1] if name == "text" else x.shape[1]
            real = text_real if name == "text" else \
                np.arange(length)[None] < np.asarray(split[f"{name}_lengths"][sl]).reshape(-1, 1)
            keep = (_old_uniforms(seed, name, index, length) > rate) & real
            masks[name] = _old_keep_cls_sep(keep, real) if name == "text" else keep
        dropped = torch.from_numpy(text_real & ~_old_keep_cls_sep(masks["text"], text_real))
        t = text.clone()
        t[:, 0, :] = torch.where(dropped, torch.full_like(t[:, 0, :], 100), t[:, 0, :])
        frames = []
        for name, x in (("audio", audio), ("vision", vision)):
            real = np.arange(x.shape[1])[None] < np.asarray(split[f"{name}_lengths"][sl]).reshape(-1, 1)
            frames.append(x.masked_fill(torch.from_numpy(real & ~masks[name]).unsqueeze(-1), 0.0))
        out["text_bert"][sl], out["audio"][sl], out["vision"][sl] = t.numpy(), frames[0].numpy(), frames[1].numpy()
    return out


# ----------------------------------------------------------------------------- LNLN / MMSA generate_m
def generate_m_split(split, rate, seed):
    """LNLN's / MMSA's generate_m algorithm on the three modalities (restated, same operations)."""
    out = {}
    text = split["text_bert"]
    ids, mask = text[:, 0, :], text[:, 1, :]
    np.random.seed(seed)
    missing = (np.random.uniform(size=mask.shape) > rate) * mask
    lengths = np.argmin(mask, axis=1)
    for i, row in enumerate(missing):  # [CLS] and [SEP] unchanged
        row[0] = row[lengths[i] - 1] = 1
    out["text_bert"] = missing * ids + 100 * np.ones_like(ids) * (mask - missing)
    for key in ("audio", "vision"):
        x = split[key]
        length_mask = np.array([np.array([1] * int(k) + [0] * (x.shape[1] - int(k)))
                                for k in split[f"{key}_lengths"]])
        np.random.seed(seed)
        missing = (np.random.uniform(size=length_mask.shape) > rate) * length_mask
        out[key] = missing.reshape(x.shape[0], x.shape[1], 1) * x
    return out


def best_times(functions: dict, repeats: int) -> dict:
    """Best CPU time (``time.process_time``: robust to other processes on a shared machine) of each
    function over ``repeats`` rounds, the functions interleaved within a round."""
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            gc.collect()
            start = time.process_time()
            result = fn()
            times[name].append(time.process_time() - start)
            del result
    return {name: min(values) for name, values in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["mosi", "mosei"], choices=sorted(SHAPES))
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--seed", type=int, default=1111)
    args = parser.parse_args(argv)

    import torch

    from dar_mmsa.data.corruption import corrupt_arrays
    from dar_mmsa.data.mask_hash import position_bits, position_bits_torch

    torch.set_num_threads(1)
    keys = ("text_bert", "audio", "vision")
    for dataset in args.datasets:
        split = make_split(dataset)
        n = len(split["text_bert"])
        megabytes = sum(split[k].nbytes for k in keys) / 2**20
        buffers = {k: np.empty_like(split[k]) for k in keys}
        one = np.float32(1.0)
        t = best_times({
            "floor": lambda: [split[k] * one for k in keys],
            "floor_out": lambda: [np.multiply(split[k], one, out=buffers[k]) for k in keys],
            "ours": lambda: corrupt_arrays(split, rate=args.rate, seed=args.seed),
            "ours_out": lambda: corrupt_arrays(split, rate=args.rate, seed=args.seed, out=buffers),
        }, args.repeats)
        floor, floor_out, ours, ours_out = t["floor"], t["floor_out"], t["ours"], t["ours_out"]
        del buffers  # memory: generate_m makes float64 copies
        t = best_times({"old": lambda: old_corrupt_arrays(split, args.rate, args.seed),
                        "gen_m": lambda: generate_m_split(split, args.rate, args.seed)}, max(1, args.repeats // 3))
        old, gen_m = t["old"], t["gen_m"]
        check = corrupt_arrays(split, rate=args.rate, seed=args.seed)
        previous = old_corrupt_arrays(split, args.rate, args.seed)
        same = all(np.array_equal(check[k], previous[k]) for k in keys)
        del check, previous
        t_a = split["audio"].shape[1]
        t = best_times({
            "numpy": lambda: [position_bits(args.seed, m, np.arange(n), t_a) for m in ("audio", "vision")],
            "torch": lambda: [position_bits_torch(args.seed, m, np.arange(n), t_a, "cpu") for m in ("audio", "vision")],
        }, args.repeats)
        hash_np, hash_torch = t["numpy"], t["torch"]
        print(f"{dataset} test ({n} samples, {megabytes:.0f} MiB of features), rate {args.rate}, best CPU time of {args.repeats}:")
        print(f"  floor: one elementwise multiply    {floor * 1e3:9.1f} ms   (into buffers: {floor_out * 1e3:.1f} ms)")
        print(f"  corrupt_arrays                     {ours * 1e3:9.1f} ms   {ours / floor:5.2f}x floor   (target <= 2x)")
        print(f"  corrupt_arrays(out=buffers)        {ours_out * 1e3:9.1f} ms   {ours_out / floor_out:5.2f}x floor "
              f"into buffers")
        print(f"  previous implementation            {old * 1e3:9.1f} ms   {old / floor:5.2f}x floor   "
              f"now {old / ours:.1f}x faster; masks identical: {same}")
        print(f"  generate_m (LNLN/MMSA algorithm)   {gen_m * 1e3:9.1f} ms   {gen_m / floor:5.2f}x floor   "
              f"corrupt_arrays {gen_m / ours:.1f}x faster (target >= 5x)")
        print(f"  hash of {n}x{t_a} positions x2: numpy {hash_np * 1e3:.1f} ms, torch cpu {hash_torch * 1e3:.1f} ms "
              f"(torch/numpy {hash_torch / hash_np:.2f})")
        del split
    return 0


if __name__ == "__main__":
    sys.exit(main())
