"""The protocol's corruption: intra-modal masks and inter-modal (whole-modality) drops."""
import numpy as np
import pytest
import torch

from dar_mmsa.benchmark.grid import SUBSETS, Condition
from dar_mmsa.data.corruption import UNK_ID, corrupt_arrays, corrupt_batch, keep_masks
from dar_mmsa.data.modality_drop import drop_arrays, expected_drop_fraction, random_presence
from dar_mmsa.errors import ConfigError

CLS, SEP = 101, 102


def make_split(n=400, seed=0, t_audio=40, t_vision=30):
    """Random MMSA-like arrays: variable text lengths ([CLS] w.. [SEP] 0..), frames zero after their length."""
    rng = np.random.default_rng(seed)
    n_tokens = rng.integers(3, 51, n)  # including [CLS] and [SEP]
    text = np.zeros((n, 3, 50), dtype=np.float32)
    for i, k in enumerate(n_tokens):
        text[i, 0, 0], text[i, 0, 1:k - 1], text[i, 0, k - 1] = CLS, rng.integers(104, 1000, k - 2), SEP
        text[i, 1, :k] = 1
    audio_len, vision_len = rng.integers(1, t_audio + 1, n), rng.integers(1, t_vision + 1, n)
    audio = rng.normal(size=(n, t_audio, 5)) * (np.arange(t_audio)[None, :, None] < audio_len[:, None, None])
    vision = rng.normal(size=(n, t_vision, 7)) * (np.arange(t_vision)[None, :, None] < vision_len[:, None, None])
    return {"text_bert": text, "audio": audio.astype(np.float32), "vision": vision.astype(np.float32),
            "audio_lengths": audio_len, "vision_lengths": vision_len}


@pytest.fixture(scope="module")
def split():
    return make_split()


def within(observed, expected, n, sigmas=4.0):
    return abs(observed - expected) <= sigmas * np.sqrt(expected * (1 - expected) / n) + 1e-12


def real_masks(split):
    text_real = split["text_bert"][:, 1] > 0
    n_real = text_real.sum(1)
    inner = text_real.copy()
    inner[:, 0] = False
    inner[np.arange(len(n_real)), n_real - 1] = False
    audio_real = np.arange(split["audio"].shape[1])[None] < split["audio_lengths"][:, None]
    vision_real = np.arange(split["vision"].shape[1])[None] < split["vision_lengths"][:, None]
    return text_real, inner, audio_real, vision_real


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_drops_the_requested_fraction_of_real_positions_only(split, rate):
    out = corrupt_arrays(split, rate=rate, seed=1111)
    text_real, inner, audio_real, vision_real = real_masks(split)
    unk = out["text_bert"][:, 0] != split["text_bert"][:, 0]
    assert (out["text_bert"][:, 0][unk] == UNK_ID).all()
    assert not unk[~inner].any(), "only real tokens other than [CLS]/[SEP] may change"
    assert within(unk[inner].mean(), rate, inner.sum())
    for key, real in (("audio", audio_real), ("vision", vision_real)):
        zeroed = (out[key] == 0).all(-1) & ~(split[key] == 0).all(-1)
        assert not zeroed[~real].any()
        assert within(zeroed[real].mean(), rate, real.sum())
        assert np.array_equal(out[key][~real], split[key][~real]), "padding stays zero"
    assert np.array_equal(out["text_bert"][:, 1:], split["text_bert"][:, 1:]), "mask and segment ids unchanged"


def test_cls_and_sep_survive_rate_one(split):
    out = corrupt_arrays(split, rate=1.0, seed=1111)
    text_real, inner, _, _ = real_masks(split)
    ids, orig = out["text_bert"][:, 0], split["text_bert"][:, 0]
    assert (ids[inner] == UNK_ID).all()
    assert np.array_equal(ids[text_real & ~inner], orig[text_real & ~inner])
    assert (ids[:, 0] == CLS).all()
    assert (out["audio"] == 0).all() and (out["vision"] == 0).all()


def test_masks_are_nested_in_the_rate(split):
    dropped = [corrupt_arrays(split, rate=r, seed=7)["audio"] == 0 for r in (0.2, 0.5, 0.8)]
    for low, high in zip(dropped, dropped[1:]):
        assert (high | ~low).all(), "a higher rate drops a superset of positions"
        assert high.sum() > low.sum()


def test_rate_zero_is_bit_identical(split):
    out = corrupt_arrays(split, rate=0.0, seed=1111)
    for key in ("text_bert", "audio", "vision"):
        assert out[key].dtype == split[key].dtype and np.array_equal(out[key], split[key])
    t = torch.from_numpy(split["text_bert"][:9])
    a, v = torch.from_numpy(split["audio"][:9]), torch.from_numpy(split["vision"][:9])
    for x, y in zip((t, a, v), corrupt_batch(t, a, v, rate=0.0, seed=3, sample_index=np.arange(9),
                                             audio_lengths=split["audio_lengths"][:9],
                                             vision_lengths=split["vision_lengths"][:9])):
        assert torch.equal(x, y)


def test_masks_do_not_depend_on_batch_size_or_order(split):
    whole = corrupt_arrays(split, rate=0.4, seed=1112)
    order = np.random.default_rng(1).permutation(len(split["text_bert"]))
    for size in (1, 7, 64):
        for start in range(0, 70, size):
            idx = order[start:start + size]
            t, a, v = corrupt_batch(*(torch.from_numpy(split[k][idx]) for k in ("text_bert", "audio", "vision")),
                                    rate=0.4, seed=1112, sample_index=torch.as_tensor(idx),
                                    audio_lengths=torch.as_tensor(split["audio_lengths"][idx]),
                                    vision_lengths=split["vision_lengths"][idx])
            assert np.array_equal(t.numpy(), whole["text_bert"][idx])
            assert np.array_equal(a.numpy(), whole["audio"][idx]) and np.array_equal(v.numpy(), whole["vision"][idx])


def test_seed_and_modality_give_different_masks(split):
    a = corrupt_arrays(split, rate=0.5, seed=1111)
    b = corrupt_arrays(split, rate=0.5, seed=1112)
    assert not np.array_equal(a["audio"], b["audio"])
    assert np.array_equal(corrupt_arrays(split, rate=0.5, seed=1111)["audio"], a["audio"])


def test_per_modality_rates(split):
    out = corrupt_arrays(split, rate={"text": 0.0, "audio": 0.5, "vision": 1.0}, seed=1)
    assert np.array_equal(out["text_bert"], split["text_bert"])
    assert not np.array_equal(out["audio"], split["audio"])
    assert (out["vision"] == 0).all()


def test_returned_keep_masks_match_the_corruption(split):
    out = corrupt_arrays(split, rate=0.5, seed=5, return_masks=True)
    text_real, inner, audio_real, _ = real_masks(split)
    changed = out["text_bert"][:, 0] != split["text_bert"][:, 0]
    assert np.array_equal(out["text_keep"], text_real & ~changed)
    assert np.array_equal(out["audio_keep"], audio_real & ~((out["audio"] == 0).all(-1) & audio_real))
    t = torch.from_numpy(split["text_bert"][:5])
    masks = keep_masks(t, torch.from_numpy(split["audio"][:5]), torch.from_numpy(split["vision"][:5]), rate=0.5,
                       seed=5, sample_index=np.arange(5), audio_lengths=split["audio_lengths"][:5],
                       vision_lengths=split["vision_lengths"][:5])
    assert np.array_equal(masks["vision"], out["vision_keep"][:5])


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_rate_outside_unit_interval_raises(split, rate):
    t = torch.from_numpy(split["text_bert"][:2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corrupt_batch(t, torch.from_numpy(split["audio"][:2]), torch.from_numpy(split["vision"][:2]), rate=rate,
                      seed=1, sample_index=[0, 1])
    with pytest.raises(ConfigError):
        Condition.intra(rate)


# ----------------------------------------------------------------------------- inter-modal
@pytest.mark.parametrize("present", SUBSETS)
def test_subsets_remove_absent_modalities_exactly(split, present):
    out = drop_arrays(split, present=present, return_masks=True)
    text_real, inner, _, _ = real_masks(split)
    if present[0]:
        assert np.array_equal(out["text_bert"], split["text_bert"])
    else:
        ids = out["text_bert"][:, 0]
        assert (ids[inner] == UNK_ID).all() and (ids[:, 0] == CLS).all()
        assert np.array_equal(ids[~inner], split["text_bert"][:, 0][~inner])
        assert not (out["text_keep"] & inner).any()
    for col, key in ((1, "audio"), (2, "vision")):
        if present[col]:
            assert np.array_equal(out[key], split[key])
        else:
            assert (out[key] == 0).all() and not out[f"{key}_keep"].any()


@pytest.mark.parametrize("rate", [0.1, 0.4, 0.7])
def test_random_drop_keeps_one_modality_and_hits_the_rate(rate):
    n = 20000
    present = random_presence(1111, np.arange(n), rate)
    assert present.any(axis=1).all()
    dropped = 1 - present.mean()
    assert within(dropped, expected_drop_fraction(rate), 3 * n)
    for col in range(3):  # no modality is favoured
        assert within(1 - present[:, col].mean(), expected_drop_fraction(rate), n)
    idx = np.array([5, 3, 19999])
    assert np.array_equal(random_presence(1111, idx, rate), present[idx]), "a pure function of the sample index"
    assert not np.array_equal(random_presence(1112, np.arange(n), rate), present)


def test_random_drop_is_nested_and_bounded():
    low, high = (random_presence(3, np.arange(5000), r) for r in (0.3, 0.6))
    assert (low | ~high).all(), "what is present at the higher rate is present at the lower one"
    assert random_presence(3, np.arange(100), 0.0).all()
    assert np.allclose(random_presence(3, np.arange(3000), 1.0).sum(1), 1)
