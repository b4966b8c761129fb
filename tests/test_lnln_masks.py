"""``--masks lnln`` gives LNLN's reference masks bit for bit (issue 9, item 4)."""
import pickle

import numpy as np
import pytest

from dar_mmsa.benchmark.evaluate import damage
from dar_mmsa.benchmark.grid import Condition, conditions_for
from dar_mmsa.data.lnln_masks import LNLN_SEED, lnln_corrupt_arrays
from lnln_reference import reference_split


@pytest.fixture(scope="module")
def test_split(small_mosi_root):
    from dar_mmsa.data.synthetic import feature_path

    with open(feature_path(small_mosi_root, "mosi", aligned=False), "rb") as f:
        split = pickle.load(f)["test"]
    split = dict(split)
    audio = split["audio"].copy()
    audio[0, split["audio_lengths"][0]:] = 0.7  # non-zero frames past the length: LNLN zeroes them
    split["audio"] = audio
    return split


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.9])
def test_lnln_masks_equal_lnln_generate_m(test_split, rate):
    ours = lnln_corrupt_arrays(test_split, rates=(rate, rate, rate), return_masks=True)
    expected = reference_split(test_split, rate, LNLN_SEED)
    for key in ("text_bert", "audio", "vision", "text_keep", "audio_keep", "vision_keep"):
        assert ours[key].dtype == expected[key].dtype, key
        assert np.array_equal(ours[key], expected[key]), key
        if key in ("audio", "vision"):  # bit for bit, signs of zeros included
            assert ours[key].tobytes() == expected[key].tobytes(), key
    assert (ours["audio"][0, test_split["audio_lengths"][0]:] == 0).all()


def test_harness_lnln_condition_uses_the_fixed_seed(test_split):
    expected = reference_split(test_split, 0.5, LNLN_SEED)
    condition = Condition.intra(0.5, masks="lnln")
    for run_seed in (1111, 1113):  # LNLN's masks do not follow the training seed
        damaged = damage(test_split, condition, run_seed, with_masks=True)
        for key in ("text_bert", "audio", "vision", "audio_keep"):
            assert np.array_equal(damaged[key], expected[key]), key
    ours = damage(test_split, Condition.intra(0.5), 1111)
    assert not np.array_equal(ours["audio"], expected["audio"])


def test_lnln_masks_leave_numpy_global_state_alone(test_split):
    np.random.seed(5)
    before = np.random.uniform()
    np.random.seed(5)
    lnln_corrupt_arrays(test_split, rates=(0.5, 0.5, 0.5))
    assert np.random.uniform() == before


def test_condition_keys_ours_unchanged_lnln_distinct():
    ours = conditions_for("intra", [0.0, 0.3])
    lnln = conditions_for("intra", [0.0, 0.3], masks="lnln")
    assert [c.key for c in ours] == ["intra-0.0", "intra-0.3"]
    assert [c.key for c in lnln] == ["intra-0.0-lnln", "intra-0.3-lnln"]
    assert ours[1].to_record()["masks"] == "ours" and lnln[1].to_record()["masks"] == "lnln"
    assert Condition.from_record(lnln[1].to_record()) == lnln[1]
    old_record = {k: v for k, v in ours[1].to_record().items() if k != "masks"}  # stores written before
    assert Condition.from_record(old_record) == ours[1]
    per_modality = conditions_for("intra", [], rates_per_modality=[{"text": 0.2}], masks="lnln")
    assert per_modality[0].key == "intra-l0.2-a0.0-v0.0-lnln"
