"""The per-host feature cache: padded arrays shared without private copies, a per-user 0700 folder,
leftovers of killed builders removed, the plain loader (with a warning) whenever the cache cannot be
used, and a planted ``objects.pkl`` never unpickled."""
import os
import pickle
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dar_mmsa.data import feature_cache
from dar_mmsa.data.feature_cache import ENV_FEATURE_CACHE, cache_folder, default_cache_root, load_for_run
from dar_mmsa.data.features import DataWarning, load_features
from dar_mmsa.data.padding import apply_padding
from dar_mmsa.data.synthetic import feature_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from padded_data import write_variant  # noqa: E402

linux_only = pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads /proc/self/smaps")


@pytest.fixture(scope="module")
def padded_root(small_mosi_root, tmp_path_factory):
    """Synthetic MOSI whose unaligned file has non-zero frames past the lengths in every other sample."""
    return write_variant(small_mosi_root, tmp_path_factory.mktemp("padded") / "root", "past_lengths")


def private_copies_kib(folder: Path) -> int:
    """Copied-on-write pages (KiB, smaps "Anonymous") of this process in its maps of files under ``folder``
    (not "Private_Dirty", which also counts page-cache pages of a freshly written file mapped only here)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
            inside = len(fields) >= 6 and fields[5].startswith(str(folder))
        elif inside and fields[0] == "Anonymous:":
            total += int(fields[1])
    return total


def as_mmsa_reads(data):
    """What MMSA's dataset and our padding hook do to the arrays in place, every page then read."""
    for items in data.values():
        items["audio"][items["audio"] == -np.inf] = 0
        for m in ("audio", "vision"):
            items[f"{m}_lengths"] = apply_padding(items[m], items[f"{m}_lengths"])
        for key in ("text_bert", "audio", "vision"):
            float(items[key].sum())
    return data


@linux_only
def test_a_worker_reading_a_padded_cached_file_keeps_no_private_copy(padded_root, tmp_path, monkeypatch):
    path = feature_path(padded_root, "mosi", aligned=False)
    plain = as_mmsa_reads(load_features(path, "mosi", False, True))
    cache = tmp_path / "cache"
    monkeypatch.setenv(ENV_FEATURE_CACHE, str(cache))
    load_for_run(path, "mosi", aligned=False, padded=True)  # builds it
    mapped = as_mmsa_reads(load_for_run(path, "mosi", aligned=False, padded=True))
    folder = cache_folder(path, cache, padded=True)
    assert private_copies_kib(folder) == 0
    for split in plain:
        for key in ("audio", "vision", "text_bert", "audio_lengths", "vision_lengths"):
            np.testing.assert_array_equal(mapped[split][key], plain[split][key])
            assert mapped[split][key].tobytes() == plain[split][key].tobytes()

    # the same padding pass on a map of the file as it was (unpadded) does copy pages: the probe sees it
    raw = load_features(path, "mosi", False, True)["train"]["audio"]
    (tmp_path / "raw").mkdir()
    np.save(tmp_path / "raw" / "audio.npy", raw)
    unpadded = np.load(tmp_path / "raw" / "audio.npy", mmap_mode="c")
    apply_padding(unpadded, load_features(path, "mosi", False, True)["train"]["audio_lengths"])
    assert private_copies_kib(tmp_path / "raw") > 0


def test_padding_writes_only_values_that_are_not_already_plus_zero():
    frames = np.array([[[1.0], [0.0], [0.0]], [[2.0], [3.0], [0.0]]], dtype=np.float32)
    frames.flags.writeable = False  # already padded: nothing may be written
    np.testing.assert_array_equal(apply_padding(frames, np.array([1, 2])), [1, 2])

    frames = np.array([[[1.0], [-0.0], [5.0]], [[2.0], [3.0], [4.0]]], dtype=np.float32)
    assert apply_padding(frames, np.array([1, 9])).tolist() == [1, 3]
    assert frames[:, :, 0].tolist() == [[1.0, 0.0, 0.0], [2.0, 3.0, 4.0]]
    assert not np.signbit(frames).any()  # -0.0 became +0.0, as the plain rule writes


def test_the_cache_folder_is_per_user_and_private(tmp_path):
    assert default_cache_root().name == f"dar_mmsa-feature-cache-{os.geteuid()}"
    made = feature_cache.check_cache_root(tmp_path / "mine")
    assert (made.stat().st_mode & 0o777) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(feature_cache.CacheUnusable, match="open to other users"):
        feature_cache.check_cache_root(shared)
    (tmp_path / "link").symlink_to(made)
    with pytest.raises(feature_cache.CacheUnusable, match="not a directory"):
        feature_cache.check_cache_root(tmp_path / "link")


class _Planted:
    """Unpickling this creates a file: the proof that a planted pickle ran."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def _plant(folder: Path, ran: Path) -> None:
    with open(folder / feature_cache.OBJECTS, "wb") as f:
        pickle.dump({"train": {"id": _Planted(ran)}}, f)


def _load_warned(path, aligned=False):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_for_run(path, "mosi", aligned=aligned, padded=not aligned)
    return data, [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


def test_a_planted_objects_pickle_in_another_users_folder_is_never_read(small_mosi_root, tmp_path, monkeypatch):
    path = feature_path(small_mosi_root, "mosi", aligned=False)
    cache, ran = tmp_path / "cache", tmp_path / "planted-pickle-ran"
    monkeypatch.setenv(ENV_FEATURE_CACHE, str(cache))
    load_for_run(path, "mosi", aligned=False, padded=True)
    folder = cache_folder(path, cache, padded=True)
    _plant(folder, ran)
    real_uid = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: real_uid + 1)  # the folder now belongs to someone else
    data, warned = _load_warned(path)
    assert not ran.exists()
    assert len(warned) == 1 and "belongs to another user" in warned[0] and "loading it in this process" in warned[0]
    np.testing.assert_array_equal(data["train"]["id"], load_features(path, "mosi", False, True)["train"]["id"])

    monkeypatch.setattr(os, "geteuid", lambda: real_uid)
    (folder / feature_cache.OBJECTS).chmod(0o666)  # ours, but anyone could have written it
    data, warned = _load_warned(path)
    assert not ran.exists() and len(warned) == 1 and "writable by others" in warned[0]


def test_leftovers_of_a_killed_builder_are_removed(small_mosi_root, tmp_path, monkeypatch):
    path = feature_path(small_mosi_root, "mosi", aligned=True)
    cache = feature_cache.check_cache_root(tmp_path / "cache")
    folder = cache_folder(path, cache, padded=False)
    leftover = cache / f".{folder.name}.k1ll3d"
    leftover.mkdir()
    (leftover / "train.audio.npy").write_bytes(b"half")
    monkeypatch.setenv(ENV_FEATURE_CACHE, str(cache))
    data, warned = _load_warned(path, aligned=True)
    assert warned == [] and not leftover.exists() and (folder / feature_cache.MANIFEST).is_file()
    assert sorted(p.name for p in cache.iterdir()) == sorted([folder.name, folder.name + ".lock"])


def test_no_room_for_the_cache_means_the_plain_loader(small_mosi_root, tmp_path, monkeypatch):
    path = feature_path(small_mosi_root, "mosi", aligned=False)
    monkeypatch.setenv(ENV_FEATURE_CACHE, str(tmp_path / "cache"))
    monkeypatch.setattr(feature_cache.shutil, "disk_usage", lambda p: SimpleNamespace(free=1 << 20))
    data, warned = _load_warned(path)
    assert len(warned) == 1 and "1 MiB free in" in warned[0]
    assert not cache_folder(path, tmp_path / "cache", padded=True).exists()
    expected = load_features(path, "mosi", False, True)
    np.testing.assert_array_equal(data["test"]["audio"], expected["test"]["audio"])
