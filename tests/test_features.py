"""Loading and validating MMSA feature pickles; the synthetic pickles pass MMSA's own loader."""
import os
import pickle
import warnings

import numpy as np
import pytest

from dar_mmsa.data import features as F
from dar_mmsa.data import synthetic as S
from dar_mmsa.errors import DataError


def _load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def _dump(data, path):
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A MOSI root at 1% of the real sizes (13/8/8 samples): {aligned: path}."""
    root = tmp_path_factory.mktemp("tiny")
    written = S.write_synthetic(root, datasets=("mosi",), scale=0.01, seed=0)
    return {aligned: written[("mosi", aligned)] for aligned in (False, True)}


def _set(split, key, fn):
    """A corruption that replaces data[split][key] by fn(old value)."""
    def corrupt(data):
        data[split][key] = fn(data[split][key])
    return corrupt


def _poke(split, key, index, value):
    """A corruption that writes one value into data[split][key]."""
    def corrupt(data):
        arr = data[split][key].copy()
        arr[index] = value
        data[split][key] = arr
    return corrupt


def _delete(split, key=None):
    def corrupt(data):
        if key is None:
            del data[split]
        else:
            del data[split][key]
    return corrupt


def _pad_violation(data):
    d = data["test"]
    audio = d["audio"].copy()
    audio[2, d["audio_lengths"][2], 1] = 0.5
    d["audio"] = audio


# (name, aligned, corruption, substrings the one-line message must contain)
CASES = [
    ("missing split", False, _delete("valid"), ["split 'valid'", "missing split"]),
    ("missing key", False, _delete("train", "audio"), ["split 'train'", "key 'audio'", "missing key"]),
    ("missing lengths", False, _delete("test", "vision_lengths"), ["key 'vision_lengths'"]),
    ("split not a dict", False, lambda d: d.__setitem__("test", [1, 2]), ["split 'test'", "dict"]),
    ("text_bert shape", False, _set("train", "text_bert", lambda a: a[:, :2]),
     ["key 'text_bert'", "(N, 3, 50)"]),
    ("text_bert 2-D", False, _set("train", "text_bert", lambda a: a[:, 0]), ["key 'text_bert'", "3-D"]),
    ("audio dim", False, _set("valid", "audio", lambda a: a[..., :4]), ["key 'audio'", "(N, *, 5)"]),
    ("vision 2-D", False, _set("valid", "vision", lambda a: a[:, :, 0]), ["key 'vision'", "3-D"]),
    ("aligned T", True, _set("train", "audio", lambda a: a[:, :40]), ["key 'audio'", "(N, 50, 5)"]),
    ("N mismatch", False, _set("test", "vision", lambda a: a[:-1]), ["key 'vision'", "samples"]),
    ("label N", False, _set("test", "regression_labels", lambda a: a[:-2]), ["key 'regression_labels'"]),
    ("id N", False, _set("train", "id", lambda a: a[:-1]), ["key 'id'", "entries"]),
    ("int audio", False, _set("train", "audio", lambda a: a.astype(np.int32)), ["key 'audio'", "float"]),
    ("int text_bert", False, _set("train", "text_bert", lambda a: a.astype(np.int64)),
     ["key 'text_bert'", "float"]),
    ("int labels", False, _set("train", "regression_labels", lambda a: a.astype(np.int64)),
     ["key 'regression_labels'", "float"]),
    ("NaN vision", False, _poke("valid", "vision", (0, 0, 0), np.nan), ["key 'vision'", "1 NaN"]),
    ("+inf audio", False, _poke("valid", "audio", (0, 0, 0), np.inf), ["key 'audio'", "1 +inf"]),
    ("-inf vision", False, _poke("valid", "vision", (1, 0, 0), -np.inf), ["key 'vision'", "1 -inf"]),
    ("NaN text", False, _poke("train", "text", (0, 0, 0), np.nan), ["key 'text'", "NaN"]),
    ("NaN label", False, _poke("train", "regression_labels", 0, np.nan),
     ["key 'regression_labels'", "NaN"]),
    ("label range", False, _poke("test", "regression_labels", 3, 3.5),
     ["key 'regression_labels'", "[-3, 3]"]),
    ("negative length", False, _poke("train", "vision_lengths", 0, -1), ["key 'vision_lengths'", "[0, 500]"]),
    ("float length", False, _set("train", "audio_lengths", lambda a: a + 0.5),
     ["key 'audio_lengths'", "integer"]),
    ("fractional id", False, _poke("train", "text_bert", (0, 0, 3), 105.5), ["key 'text_bert'", "token ids"]),
    ("negative id", False, _poke("train", "text_bert", (1, 0, 3), -1.0), ["key 'text_bert'", "non-negative"]),
    ("segment id", False, _poke("train", "text_bert", (1, 2, 3), 0.5), ["key 'text_bert'", "segment ids"]),
    ("mask value", False, _poke("valid", "text_bert", (0, 1, 2), 0.5), ["key 'text_bert'", "attention mask"]),
    ("top level", False, lambda d: d.clear() or d.update(train=None), ["split"]),
]


@pytest.mark.parametrize("name,aligned,corrupt,expected", CASES, ids=[c[0] for c in CASES])
def test_validation_errors(tiny, tmp_path, name, aligned, corrupt, expected):
    data = _load(tiny[aligned])
    corrupt(data)
    path = _dump(data, tmp_path / "bad.pkl")
    with pytest.raises(DataError) as info:
        F.load_features(path, "mosi", aligned)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and "fix:" in message
    for part in expected:
        assert part in message, (part, message)


def test_feature_sizes_come_from_the_data(tiny, tmp_path):
    # MOSI's 5-d audio read as MOSEI is accepted (MMSA-FET writes any sizes; MMSA takes them from the file),
    # but a split whose audio size differs from the train split's is refused
    F.load_features(tiny[False], "mosei", aligned=False)
    data = _load(tiny[False])
    data["test"]["audio"] = np.zeros(data["test"]["audio"].shape[:2] + (7,), np.float32)
    path = _dump(data, tmp_path / "mixed.pkl")
    with pytest.raises(DataError, match=r"split 'test', key 'audio'.*\(N, \*, 5\)"):
        F.load_features(path, "mosi", aligned=False)


def test_missing_file_says_how_to_fix(tmp_path):
    path = tmp_path / "MOSI" / "Processed" / "unaligned_50.pkl"
    with pytest.raises(DataError) as info:
        F.load_features(path, "mosi", aligned=False)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "not found" in message
    assert "python -m dar_mmsa.data.synthetic" in message and "--data-root" in message


@pytest.mark.parametrize("content", [b"", b"not a pickle at all", b"\x80\x04\x95"])
def test_unpicklable_file(tmp_path, content):
    path = tmp_path / "broken.pkl"
    path.write_bytes(content)
    with pytest.raises(DataError, match="cannot unpickle") as info:
        F.load_features(path, "mosi", aligned=False)
    assert "\n" not in str(info.value)


def test_not_a_dict(tmp_path):
    path = _dump([1, 2, 3], tmp_path / "list.pkl")
    with pytest.raises(DataError, match="expected a dict with splits"):
        F.load_features(path, "mosi", aligned=False)


def test_use_bert_false_needs_text(tiny, tmp_path):
    data = _load(tiny[False])
    del data["train"]["text"]
    path = _dump(data, tmp_path / "no_text.pkl")
    F.load_features(path, "mosi", aligned=False, use_bert=True)  # text is not read with BERT
    with pytest.raises(DataError, match="key 'text'"):
        F.load_features(path, "mosi", aligned=False, use_bert=False)


def test_neg_inf_in_audio_is_zeroed_with_warning(tiny, tmp_path):
    data = _load(tiny[False])
    audio = data["test"]["audio"].copy()
    audio[0, 0, 0] = audio[1, 3, 2] = -np.inf
    audio[2, data["test"]["audio_lengths"][2], 0] = -np.inf  # -inf in the padding counts as zero
    data["test"]["audio"] = audio
    path = _dump(data, tmp_path / "neginf.pkl")
    with pytest.warns(UserWarning, match=r"replaced 3 -inf audio values with 0 \(test: 3\)"):
        loaded = F.load_features(path, "mosi", aligned=False)
    assert np.isfinite(loaded["test"]["audio"]).all()
    assert loaded["test"]["audio"][0, 0, 0] == 0 and loaded["test"]["audio"][1, 3, 2] == 0


def test_validate_is_pure(tiny):
    data = _load(tiny[False])
    data["train"]["audio"] = data["train"]["audio"].copy()
    data["train"]["audio"][0, 0, 0] = -np.inf
    F.validate_features(data, tiny[False], "mosi", aligned=False)
    assert data["train"]["audio"][0, 0, 0] == -np.inf


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
@pytest.mark.parametrize("aligned", [False, True])
def test_good_synthetic_pickles_pass(synthetic_root, dataset, aligned):
    path = S.feature_path(synthetic_root, dataset, aligned)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no -inf in synthetic data, so no warning either
        data = F.load_features(path, dataset, aligned)
    assert set(data) == set(S.SPLITS)


def test_small_chunks_find_the_same_problems(tiny, monkeypatch):
    # force many chunks so the chunk offsets in the padding scan are exercised
    from dar_mmsa.data import padding as P

    data = _load(tiny[False])
    _pad_violation(data)
    whole = P.padding_findings(data["test"])
    monkeypatch.setattr(P, "_CHUNK_BYTES", 1)
    assert P.padding_findings(data["test"]) == whole
    assert whole["audio"].past_length_samples == 1 and whole["vision"].past_length_samples == 0


def test_fingerprint(tmp_path, monkeypatch):
    a = tmp_path / "a.bin"
    a.write_bytes(b"x" * 5000)
    b = tmp_path / "b.bin"
    b.write_bytes(b"x" * 5000)
    os.utime(b, (1, 1))
    assert F.fingerprint(a) == F.fingerprint(b)
    assert F.fingerprint(a).startswith("sha256:")
    b.write_bytes(b"x" * 4999 + b"y")
    assert F.fingerprint(a) != F.fingerprint(b)
    # large-file mode: size plus first and last MiB
    monkeypatch.setattr(F, "FULL_HASH_LIMIT", 1000)
    monkeypatch.setattr(F, "EDGE_BYTES", 100)
    fp = F.fingerprint(a)
    assert fp.startswith("sha256-size-edges:")
    assert fp != F.fingerprint(b)  # the last bytes differ
    c = tmp_path / "c.bin"
    c.write_bytes(b"x" * 2000 + b"z" + b"x" * 2999)  # a change in the middle is not seen
    assert F.fingerprint(c) == fp


def _mmsa_args(path, aligned):
    from easydict import EasyDict

    return EasyDict(model_name="tfn", dataset_name="mosi", featurePath=str(path), use_bert=True,
                    feature_dims=[768, 5, 20], need_data_aligned=aligned, batch_size=4,
                    custom_feature=None, feature_T="", feature_A="", feature_V="",
                    seq_lens=[50, 375, 500], train_mode="regression")


@pytest.mark.parametrize("aligned", [False, True])
def test_mmsa_own_loader_reads_synthetic(tiny, aligned):
    from MMSA.data_loader import MMDataLoader

    args = _mmsa_args(tiny[aligned], aligned)
    loaders = MMDataLoader(args, num_workers=0)
    t_a, t_v = (50, 50) if aligned else (375, 500)
    assert tuple(args.seq_lens) == (50, t_a, t_v)
    assert list(args.feature_dims) == [768, 5, 20]
    for split, n in zip(S.SPLITS, S.split_sizes("mosi", 0.01)):
        assert len(loaders[split].dataset) == n
        batch = next(iter(loaders[split]))
        assert batch["text"].shape == (4, 3, 50)
        assert batch["audio"].shape == (4, t_a, 5)
        assert batch["vision"].shape == (4, t_v, 20)
        assert batch["labels"]["M"].shape == (4, 1)
        assert len(batch["id"]) == len(batch["raw_text"]) == 4
        if aligned:
            assert "audio_lengths" not in batch
        else:
            assert batch["audio_lengths"].shape == (4,) and batch["vision_lengths"].shape == (4,)
