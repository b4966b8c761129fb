"""The synthetic MMSA-format generator: format, determinism, label distribution and signal."""
import json
import pickle

import numpy as np
import pytest

from dar_mmsa.data import synthetic as S

SCALE = 0.02


def _load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    """MOSI and MOSEI at 2% of the real sizes (MOSEI train: 327 samples)."""
    root = tmp_path_factory.mktemp("synthetic")
    written = S.write_synthetic(root, datasets=("mosi", "mosei"), scale=SCALE, seed=0)
    return root, written


@pytest.fixture(scope="module")
def probe_data(tmp_path_factory):
    """MOSI unaligned at 40%: 514 train / 274 test samples, enough for stable linear probes."""
    root = tmp_path_factory.mktemp("probe")
    written = S.write_synthetic(root, datasets=("mosi",), scale=0.4, seed=0)
    return _load(written[("mosi", False)])


def test_writes_all_files_and_marker(small_root):
    root, written = small_root
    assert set(written) == {(ds, al) for ds in ("mosi", "mosei") for al in (False, True)}
    assert written[("mosi", False)] == root / "MOSI" / "Processed" / "unaligned_50.pkl"
    assert written[("mosei", True)] == root / "MOSEI" / "Processed" / "aligned_50.pkl"
    marker = json.loads((root / S.MARKER_FILE).read_text())
    assert marker["synthetic"] is True and marker["seed"] == 0 and marker["scale"] == SCALE
    assert marker["generator_version"] == S.GENERATOR_VERSION
    assert S.is_synthetic_root(root)


def test_is_synthetic_root_false_without_marker(tmp_path):
    assert not S.is_synthetic_root(tmp_path)
    (tmp_path / S.MARKER_FILE).write_text("not json")
    assert not S.is_synthetic_root(tmp_path)


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
@pytest.mark.parametrize("aligned", [False, True])
def test_shapes_dtypes_keys(small_root, dataset, aligned):
    _, written = small_root
    data = _load(written[(dataset, aligned)])
    assert type(data) is dict and list(data) == list(S.SPLITS)
    t_a, d_a = S.SHAPES[(dataset, aligned)]["audio"]
    t_v, d_v = S.SHAPES[(dataset, aligned)]["vision"]
    assert (d_a, d_v) == S.FEATURE_DIMS[dataset]
    if aligned:
        assert t_a == t_v == 50
    for split, n in zip(S.SPLITS, S.split_sizes(dataset, SCALE)):
        d = data[split]
        assert type(d) is dict
        expected = {"text_bert", "text", "audio", "vision", "regression_labels",
                    "classification_labels", "id", "raw_text"}
        if not aligned:
            expected |= {"audio_lengths", "vision_lengths"}
        assert set(d) == expected
        assert d["text_bert"].shape == (n, 3, 50) and d["text_bert"].dtype == np.float32
        assert d["text"].shape == (n, 50, 300) and d["text"].dtype == np.float32
        assert d["audio"].shape == (n, t_a, d_a) and d["audio"].dtype == np.float32
        assert d["vision"].shape == (n, t_v, d_v) and d["vision"].dtype == np.float32
        assert d["regression_labels"].shape == (n,) and d["regression_labels"].dtype == np.float32
        assert d["classification_labels"].shape == (n,)
        assert len(d["id"]) == len(d["raw_text"]) == n
        for key in ("text_bert", "text", "audio", "vision"):
            assert np.isfinite(d[key]).all()
        assert np.abs(d["audio"]).max() < 50 and np.abs(d["vision"]).max() < 50


def test_split_sizes_scale_and_minimum():
    assert S.split_sizes("mosi") == S.SPLIT_SIZES["mosi"] == (1284, 229, 686)
    assert S.split_sizes("mosei") == (16326, 1871, 4659)
    assert S.split_sizes("mosi", 0.0001) == (8, 8, 8)
    assert S.split_sizes("mosei", 0.5) == (8163, 936, 2330)


def test_sims_sizes_and_files():
    assert S.split_sizes("sims") == (1368, 456, 457)
    assert S.ALIGNMENTS["sims"] == (False,) and ("sims", True) not in S.SHAPES
    assert S.SHAPES[("sims", False)] == {"audio": (400, 33), "vision": (55, 709)}
    assert S.file_name("sims", False) == "unaligned_39.pkl" and S.file_name("mosi", True) == "aligned_50.pkl"
    chinese = S.vocab_words("cn")
    assert len(chinese) == len(set(chinese)) == S.VOCAB_SIZE - S.FIRST_WORD_ID
    assert chinese[0] == "\u4e00" and all(len(c) == 1 for c in chinese)


def test_deterministic_by_seed(tmp_path):
    a = S.write_synthetic(tmp_path / "a", datasets=("mosi",), scale=0.01, seed=3)
    b = S.write_synthetic(tmp_path / "b", datasets=("mosi",), scale=0.01, seed=3)
    c = S.write_synthetic(tmp_path / "c", datasets=("mosi",), scale=0.01, seed=4)
    for key in a:
        assert a[key].read_bytes() == b[key].read_bytes()
    assert a[("mosi", False)].read_bytes() != c[("mosi", False)].read_bytes()


def test_aligned_and_unaligned_share_samples(small_root):
    _, written = small_root
    un, al = _load(written[("mosi", False)]), _load(written[("mosi", True)])
    for split in S.SPLITS:
        for key in ("text_bert", "text", "regression_labels", "id", "raw_text"):
            assert np.array_equal(un[split][key], al[split][key])


def test_label_distribution(probe_data):
    y = np.concatenate([probe_data[s]["regression_labels"] for s in S.SPLITS])
    assert y.min() >= -3 and y.max() <= 3
    assert np.allclose(y * 5, np.round(y * 5), atol=1e-4)  # 0.2 grid
    zero, pos, neg = (y == 0).mean(), (y > 0).mean(), (y < 0).mean()
    assert 0.01 < zero < 0.06
    assert pos > neg > 0.3
    # bimodal: the bins next to zero hold fewer labels than those around +-1.5
    centre = (np.abs(y) <= 0.4).mean()
    shoulder = ((np.abs(y) >= 1.2) & (np.abs(y) <= 2.0)).mean()
    assert shoulder > 1.5 * centre
    cls = probe_data["train"]["classification_labels"]
    train_y = probe_data["train"]["regression_labels"]
    assert np.array_equal(cls, np.where(train_y < 0, 0, np.where(train_y == 0, 1, 2)))


@pytest.mark.parametrize("aligned", [False, True])
def test_text_ids_structure(small_root, aligned):
    _, written = small_root
    for split, d in _load(written[("mosei", aligned)]).items():
        ids, mask, seg = d["text_bert"][:, 0], d["text_bert"][:, 1], d["text_bert"][:, 2]
        length = mask.sum(1).astype(int)
        assert length.min() >= 8 and length.max() <= 50
        real = np.arange(50)[None, :] < length[:, None]
        assert np.array_equal(mask, real.astype(np.float32))  # mask is a prefix of ones
        assert (seg == 0).all()
        assert (ids[:, 0] == S.CLS_ID).all()
        assert (ids[np.arange(len(ids)), length - 1] == S.SEP_ID).all()
        assert (ids[~real] == 0).all()
        words = ids[real & (np.arange(50)[None, :] > 0) & (np.arange(50)[None, :] < length[:, None] - 1)]
        assert words.min() >= S.FIRST_WORD_ID and words.max() < S.VOCAB_SIZE
        # the GloVe-like field holds one vector per word: length - 2 non-zero rows, then zeros
        glove_rows = (d["text"] != 0).any(axis=2)
        assert np.array_equal(glove_rows, np.arange(50)[None, :] < (length - 2)[:, None])


def test_raw_text_matches_ids(small_root):
    _, written = small_root
    d = _load(written[("mosi", False)])["train"]
    vocab = S.vocab_words()
    for row, text in zip(d["text_bert"][:5, 0].astype(int), d["raw_text"][:5]):
        words = [vocab[i - S.FIRST_WORD_ID] for i in row if i >= S.FIRST_WORD_ID]
        assert text == " ".join(words)
    assert all(i.startswith("synthetic_") and "$_$" in i for i in d["id"])
    assert len(set(d["id"])) == len(d["id"])


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_lengths_and_zero_padding(small_root, dataset):
    _, written = small_root
    for aligned in (False, True):
        for d in _load(written[(dataset, aligned)]).values():
            text_len = d["text_bert"][:, 1].sum(1).astype(int)
            for m in ("audio", "vision"):
                frames = d[m]
                lengths = text_len if aligned else np.asarray(d[f"{m}_lengths"])
                assert lengths.min() >= 1 and lengths.max() <= frames.shape[1]
                real = np.arange(frames.shape[1])[None, :] < lengths[:, None]
                assert (frames[~real] == 0).all()
                assert (np.abs(frames[real]).sum(axis=1) > 0).all()
            if not aligned:
                # longer utterances have longer audio and video
                assert np.corrcoef(text_len, d["audio_lengths"])[0, 1] > 0.5
                assert np.corrcoef(d["audio_lengths"], d["vision_lengths"])[0, 1] > 0.8


def _time_average(frames, lengths):
    return frames.sum(axis=1) / np.maximum(lengths, 1)[:, None]


def _features(d):
    """Time-averaged features per modality (over real positions only)."""
    n_words = d["text_bert"][:, 1].sum(1) - 2
    feats = {
        "text": _time_average(d["text"], n_words),
        "audio": _time_average(d["audio"], np.asarray(d["audio_lengths"])),
        "vision": _time_average(d["vision"], np.asarray(d["vision_lengths"])),
    }
    feats["all"] = np.concatenate([feats["text"], feats["audio"], feats["vision"]], axis=1)
    return feats


def _ridge_mae(x_train, y_train, x_test, y_test, lam):
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-8
    a = np.hstack([(x_train - mu) / sd, np.ones((len(x_train), 1))])
    b = np.hstack([(x_test - mu) / sd, np.ones((len(x_test), 1))])
    reg = lam * np.eye(a.shape[1])
    reg[-1, -1] = 0.0
    w = np.linalg.solve(a.T @ a + reg, a.T @ y_train)
    return float(np.abs(b @ w - y_test).mean())


def test_each_modality_predicts_and_fusion_helps(probe_data):
    train, test = _features(probe_data["train"]), _features(probe_data["test"])
    y_train = probe_data["train"]["regression_labels"].astype(np.float64)
    y_test = probe_data["test"]["regression_labels"].astype(np.float64)
    mean_mae = float(np.abs(y_test - y_train.mean()).mean())
    # ridge keeps the 300-d text probe from overfitting a few hundred samples
    lam = {"text": 0.1 * len(y_train), "all": 0.1 * len(y_train), "audio": 1.0, "vision": 1.0}
    mae = {m: _ridge_mae(train[m], y_train, test[m], y_test, lam[m]) for m in train}
    for m in ("text", "audio", "vision"):
        assert mae[m] < mean_mae - 0.05, (m, mae, mean_mae)
    assert mae["all"] < min(mae["text"], mae["audio"], mae["vision"]) - 0.03, mae


def test_cli_prints_synthetic(tmp_path, capsys):
    assert S.main(["--root", str(tmp_path), "--datasets", "mosi", "--scale", "0.005", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "unaligned_50.pkl" in out and "aligned_50.pkl" in out
    assert S.is_synthetic_root(tmp_path)


def test_rejects_unknown_dataset(tmp_path):
    from dar_mmsa.errors import ConfigError

    with pytest.raises(ConfigError):
        S.write_synthetic(tmp_path, datasets=("iemocap",))
