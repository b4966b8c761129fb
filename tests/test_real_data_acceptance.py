"""Files MMSA and LNLN accept run here too (issue 9, item 2): frames past the lengths, front
padding, lengths above T -- with one warning per file and split. Under the protocol's padding rule
(our models; MMSA's with ``pad_past_lengths``) the inputs a model sees equal LNLN's generate_m output
on that file; by default MMSA's models see the file as stock MMSA 2.2.1 loads it (issue 21, item 7)."""
import pickle
import warnings

import numpy as np
import pytest

from dar_mmsa.data import features as F
from dar_mmsa.data.padding import apply_padding, scan_padding
from dar_mmsa.data.synthetic import feature_path
from lnln_reference import reference_split
from padded_data import VARIANTS, write_variant

EXPECTED_WARNING = {
    "past_lengths": "samples have non-zero audio frames at t >= audio_lengths",
    "front_padded": "looks front-padded",
    "over_length": "audio_lengths exceed T = ",
}


@pytest.fixture(scope="module")
def roots(small_mosi_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("variants")
    return {v: write_variant(small_mosi_root, base / v, v) for v in VARIANTS}


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(F, "_WARNED", set())


def _raw(root):
    with open(feature_path(root, "mosi", aligned=False), "rb") as f:
        return pickle.load(f)


@pytest.mark.parametrize("variant", VARIANTS)
def test_accepted_with_one_warning_per_split(roots, variant):
    path = feature_path(roots[variant], "mosi", aligned=False)
    with pytest.warns(UserWarning) as record:
        F.load_features(path, "mosi", aligned=False)
    messages = [str(w.message) for w in record]
    assert len(messages) == 3  # train, valid, test
    for split, message in zip(("train", "valid", "test"), messages):
        assert f"[split '{split}']" in message and EXPECTED_WARNING[variant] in message, message
        assert "\n" not in message and "every missing rate, 0 included" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.load_features(path, "mosi", aligned=False)  # once per process and file


def test_right_padded_file_gets_no_padding_warning(small_mosi_root):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.load_features(feature_path(small_mosi_root, "mosi", aligned=False), "mosi", aligned=False)


def test_scan_counts_by_hand():
    frames = np.zeros((3, 4, 2), dtype=np.float32)
    frames[0, :2] = 1  # right-padded, length 2
    frames[1, 2:] = 1  # front-padded: length 2 but real frames at t = 2, 3
    frames[2, :] = 1  # length 6 > T = 4
    scan = scan_padding(frames, np.array([2, 2, 6]))
    assert (scan.past_length_samples, scan.past_length_frames) == (1, 2)
    assert (scan.over_length_samples, scan.max_length) == (1, 6)
    assert (scan.front_padded_samples, scan.partial_samples) == (1, 2) and not scan.looks_front_padded
    lengths = apply_padding(frames, np.array([2, 2, 6]))
    assert lengths.tolist() == [2, 2, 4]
    assert frames[1].sum() == 0 and frames[0].sum() == 4 and frames[2].sum() == 8


def _misa_test_set(root, tiny_bert, tmp_path, **overrides):
    """MISA's test dataset as the harness loads it from ``root`` (run options in ``overrides``)."""
    from dar_mmsa.runner import build_args, load_data

    args = build_args("misa", "mosi", data_root=root, pretrained=tiny_bert, device="cpu",
                      save_path=tmp_path / "m.pth", overrides={"batch_size": 4, **overrides})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_data(args)["test"].dataset


@pytest.mark.parametrize("variant", VARIANTS)
def test_mmsa_model_sees_the_stock_inputs_by_default(roots, variant, tiny_bert, tmp_path):
    """Without ``pad_past_lengths`` MISA's test inputs are the file's: frames past the lengths, front
    padding and lengths above T unchanged, as stock MMSA's own loader gives them."""
    from MMSA.data_loader import MMDataset

    from dar_mmsa.runner import build_args

    test_set = _misa_test_set(roots[variant], tiny_bert, tmp_path)
    raw = _raw(roots[variant])["test"]
    padded = _misa_test_set(roots[variant], tiny_bert, tmp_path / "padded", pad_past_lengths=True)
    stock_args = build_args("misa", "mosi", data_root=roots[variant], pretrained=tiny_bert, device="cpu",
                            save_path=tmp_path / "s.pth")
    stock = MMDataset(stock_args, mode="test")  # MMSA's dataset class, not through the harness's loader
    for m in ("audio", "vision"):
        assert np.array_equal(getattr(test_set, m), raw[m].astype(np.float32)), (variant, m)
        assert np.array_equal(getattr(test_set, m), getattr(stock, m)), (variant, m)
        assert np.array_equal(np.asarray(getattr(test_set, f"{m}_lengths")), raw[f"{m}_lengths"]), (variant, m)
    # each variant differs from the padded inputs: the default really is not the protocol's rule
    differs = {"past_lengths": not np.array_equal(test_set.audio, padded.audio),
               "front_padded": not np.array_equal(test_set.audio, padded.audio),
               "over_length": test_set.audio_lengths[0] == test_set.audio.shape[1] + 7
               and padded.audio_lengths[0] == padded.audio.shape[1]}
    assert differs[variant]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("rate", [0.0, 0.4])
def test_model_inputs_equal_lnln_generate_m(roots, variant, rate, tiny_bert, tmp_path):
    """The protocol's padding rule, on an MMSA model with the documented option ``pad_past_lengths``."""
    from dar_mmsa.benchmark.evaluate import damaged_dataset
    from dar_mmsa.benchmark.grid import Condition

    test_set = _misa_test_set(roots[variant], tiny_bert, tmp_path, pad_past_lengths=True)
    raw = dict(_raw(roots[variant])["test"])
    for m in ("audio", "vision"):  # LNLN cannot build its masks from lengths above T: give it T there
        raw[f"{m}_lengths"] = np.minimum(raw[f"{m}_lengths"], raw[m].shape[1])
    expected = reference_split(raw, rate)
    lnln = damaged_dataset(test_set, Condition.intra(rate, masks="lnln"), 1111)
    for m, key in (("text", "text_bert"), ("audio", "audio"), ("vision", "vision")):
        assert np.array_equal(getattr(lnln, m), expected[key]), (variant, m)
    ours = damaged_dataset(test_set, Condition.intra(rate), 1111)
    for m in ("audio", "vision"):
        past = np.arange(raw[m].shape[1])[None, :] >= raw[f"{m}_lengths"][:, None]
        assert not getattr(ours, m)[past].any()  # padding is zero at every rate, under our masks too
        if rate == 0:
            assert np.array_equal(getattr(ours, m), expected[m])


@pytest.mark.parametrize("variant", VARIANTS)
def test_smoke_benchmark_runs_with_warnings(roots, variant, tmp_path, capfd):
    import run_benchmark

    code = run_benchmark.main(["--smoke", "--data-root", str(roots[variant]), "--models", "misa", "--seeds", "1111",
                               "--rates", "0.0", "0.5", "--out", str(tmp_path), "--no-progress"])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert EXPECTED_WARNING[variant] in err and "error" not in err
    assert "Table 1" in out


@pytest.mark.parametrize("pad", [False, True])
def test_tfr_net_loads_a_file_with_lengths_above_t(roots, tiny_bert, tmp_path, pad):
    """TFR-Net's MMSA loader builds its masks from the lengths, which stock MMSA 2.2.1 cannot do for a
    length above T (a ragged array): the masks use lengths clipped to T (a crash shim, always on). The
    dataset's own lengths stay the file's by default, and are clipped to T with ``pad_past_lengths``."""
    from dar_mmsa.runner import build_args, load_data

    args = build_args("tfr_net", "mosi", data_root=roots["over_length"], pretrained=tiny_bert, device="cpu",
                      save_path=tmp_path / "m.pth", overrides={"pad_past_lengths": pad})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        test_set = load_data(args)["test"].dataset
    t_len = test_set.audio.shape[1]
    assert test_set.audio_mask.shape == (len(test_set), t_len) and test_set.audio_mask[0].sum() == t_len
    assert test_set.audio_lengths[0] == (t_len if pad else t_len + 7)
