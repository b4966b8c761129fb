"""The corruption's hash is the protocol: the fast numpy path, the torch path (CPU, and CUDA when
present) and the previous numpy implementation (restated here) give bit-identical masks."""
import numpy as np
import pytest
import torch

from dar_mmsa.data import corruption as C
from dar_mmsa.data import mask_hash as H
from test_corruption import make_split

G, M1, M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def old_splitmix64(x):
    with np.errstate(over="ignore"):
        z = x + G
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        return z ^ (z >> np.uint64(31))


def old_bits(seed, modality, index, length):
    index = np.asarray(index, dtype=np.int64).reshape(-1).astype(np.uint64)
    code = {"text": 1, "audio": 2, "vision": 3}[modality]
    key = old_splitmix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) ^ np.uint64(code << 56))
    row = old_splitmix64(key ^ old_splitmix64(index))[:, None]
    return old_splitmix64(row ^ old_splitmix64(np.arange(length, dtype=np.uint64)[None, :] + np.uint64(0x5BD1E995)))


def old_uniforms(seed, modality, index, length):
    return (old_bits(seed, modality, index, length) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def old_keep_masks(split, rate, seed):
    """The previous implementation's kept positions over a whole split (rows = sample indices)."""
    n = len(split["text_bert"])
    index = np.arange(n)
    text_real = split["text_bert"][:, 1] > 0
    n_real = text_real.sum(1)
    masks = {}
    for m, key in (("text", "text_bert"), ("audio", "audio"), ("vision", "vision")):
        length = split[key].shape[-1 if m == "text" else 1]
        r = np.broadcast_to(np.asarray(rate[m] if isinstance(rate, dict) else rate, dtype=np.float64).reshape(-1, 1),
                            (n, 1))
        keep = old_uniforms(seed, m, index, length) > r
        if m == "text":
            real = text_real
            keep = keep & real
            rows = np.nonzero(n_real > 0)[0]
            keep[rows, 0] = True
            keep[rows, n_real[rows] - 1] = True
        else:
            real = np.arange(length)[None] < split[f"{key}_lengths"][:, None]
        masks[m] = keep & real
    return masks


SEEDS = [0, 1111, 2**40 + 3, -5, 1111 * 1_000_003 + 7, 2**64 - 1]


@pytest.mark.parametrize("seed", SEEDS)
def test_hash_bits_unchanged_numpy_and_torch(seed):
    index = np.array([0, 1, 2, 385, 4658, 10**9, -1])
    for m in C.MODALITIES:
        expected = old_bits(seed, m, index, 61)
        assert np.array_equal(H.position_bits(seed, m, index, 61), expected)
        got = H.position_bits_torch(seed, m, torch.as_tensor(index), 61, "cpu")
        assert got.dtype == torch.int64
        assert np.array_equal(got.numpy().view(np.uint64), expected)
        assert np.array_equal(H.position_uniforms(seed, m, index, 61), old_uniforms(seed, m, index, 61))


def test_integer_threshold_equals_the_float_comparison_at_the_boundaries():
    u = old_uniforms(1111, "audio", np.arange(64), 97)
    bits = old_bits(1111, "audio", np.arange(64), 97)
    # rates equal to drawn u values (u > r must be False there), their float neighbours, 0 and 1
    picked = u.reshape(-1)[::37]
    rates = np.concatenate([[0.0, 1.0, 0.5, 1e-300, np.nextafter(1.0, 0)], picked,
                            np.nextafter(picked, 0), np.nextafter(picked, 1)])
    for r in rates:
        old = u > r
        assert np.array_equal(H._hash_keep(bits, H.rate_thresholds(r, 64)), old), r
        torch_bits = torch.from_numpy(bits.view(np.int64).copy())
        assert np.array_equal(H._hash_keep_torch(torch_bits, r).numpy(), old), r


@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0, "per-sample", "per-modality"])
def test_whole_split_masks_and_outputs_equal_the_previous_implementation(rate):
    split = make_split(n=150, seed=3)
    n = len(split["text_bert"])
    if rate == "per-sample":
        rate = np.random.default_rng(0).random(n)
    elif rate == "per-modality":
        rate = {"text": 0.7, "audio": np.linspace(0, 1, n), "vision": 0.25}
    expected = old_keep_masks(split, rate, seed=1234)
    for chunk in (7, 256):
        out = C.corrupt_arrays(split, rate=rate, seed=1234, chunk=chunk, return_masks=True)
        for m in C.MODALITIES:
            assert np.array_equal(out[f"{m}_keep"], expected[m]), m
        ids = np.where(expected["text"] | ~(split["text_bert"][:, 1] > 0), split["text_bert"][:, 0], C.UNK_ID)
        assert np.array_equal(out["text_bert"][:, 0], ids)
        assert np.array_equal(out["text_bert"][:, 1:], split["text_bert"][:, 1:])
        for m in ("audio", "vision"):
            real = np.arange(split[m].shape[1])[None] < split[f"{m}_lengths"][:, None]
            want = np.where((real & ~expected[m])[..., None], np.float32(0), split[m])
            assert out[m].tobytes() == want.tobytes(), m  # bitwise: +0.0, never -0.0


def test_batch_on_torch_equals_whole_split_on_numpy():
    split = make_split(n=90, seed=4)
    rate = {"text": 0.4, "audio": np.linspace(0, 1, 90), "vision": 0.6}
    whole = C.corrupt_arrays(split, rate=rate, seed=99, return_masks=True)
    rows = np.array([5, 80, 3, 41, 17])
    sub_rate = {"text": 0.4, "audio": rate["audio"][rows], "vision": 0.6}
    tensors = [torch.from_numpy(split[k][rows]) for k in ("text_bert", "audio", "vision")]
    kwargs = dict(rate=sub_rate, seed=99, sample_index=torch.as_tensor(rows),
                  audio_lengths=torch.as_tensor(split["audio_lengths"][rows]),
                  vision_lengths=split["vision_lengths"][rows])
    batch = C.corrupt_batch(*tensors, **kwargs)
    for got, key in zip(batch, ("text_bert", "audio", "vision")):
        assert got.numpy().tobytes() == whole[key][rows].tobytes()
    masks = C.keep_masks(*tensors, **kwargs)
    for m in C.MODALITIES:
        assert np.array_equal(masks[m], whole[f"{m}_keep"][rows])


def test_out_buffers_are_filled_and_reused():
    split = make_split(n=60, seed=5)
    fresh = C.corrupt_arrays(split, rate=0.5, seed=1)
    buffers = {k: np.full_like(split[k], np.nan, dtype=np.float32) for k in ("text_bert", "audio", "vision")}
    for rate in (0.9, 0.5):  # reuse across rates: nothing of the previous rate remains
        out = C.corrupt_arrays(split, rate=rate, seed=1, out=buffers)
    assert all(out[k] is buffers[k] for k in buffers)
    for k in buffers:
        assert np.array_equal(out[k], fresh[k])
    in_place = {k: np.array(split[k], dtype=np.float32) for k in ("text_bert", "audio", "vision")}
    own = dict(split, **in_place)
    out = C.corrupt_arrays(own, rate=0.5, seed=1, out=in_place)
    for k in in_place:
        assert out[k] is in_place[k] and np.array_equal(in_place[k], fresh[k])


def test_bad_out_buffer_is_one_clear_error():
    split = make_split(n=10, seed=6)
    bad = {k: np.empty_like(split[k], dtype=np.float32) for k in ("text_bert", "audio", "vision")}
    bad["audio"] = bad["audio"][:5]
    with pytest.raises(ValueError, match="out\\['audio'\\] must be"):
        C.corrupt_arrays(split, rate=0.5, seed=1, out=bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_masks_and_batches_equal_cpu():
    split = make_split(n=70, seed=7)
    for seed in SEEDS:
        for m in C.MODALITIES:
            cpu = H.position_bits_torch(seed, m, np.arange(70), 53, "cpu")
            cuda = H.position_bits_torch(seed, m, np.arange(70), 53, "cuda")
            assert torch.equal(cuda.cpu(), cpu)
    rate = {"text": 0.4, "audio": np.linspace(0, 1, 70), "vision": 0.6}
    kwargs = dict(rate=rate, seed=3, sample_index=torch.arange(70), audio_lengths=split["audio_lengths"],
                  vision_lengths=torch.as_tensor(split["vision_lengths"]))
    tensors = [torch.from_numpy(split[k]) for k in ("text_bert", "audio", "vision")]
    on_cpu = C.corrupt_batch(*tensors, **kwargs)
    on_cuda = C.corrupt_batch(*(t.cuda() for t in tensors), **kwargs)
    for a, b in zip(on_cpu, on_cuda):
        assert b.device.type == "cuda" and torch.equal(a, b.cpu())
