"""The feature arrays of one run: loaded once per process, or shared by every process on a host.

:func:`load_for_run` is what the MMDataLoader hook (``dar_mmsa.mmsa_hooks``) hands to MMSA:

* by default, the pickle unpickled once (:func:`dar_mmsa.data.features.load_features`: validated
  and audio ``-inf`` zeroed in place);
* with ``$DAR_MMSA_FEATURE_CACHE`` set to a local folder (the Ray executor sets
  :func:`default_cache_root` in its workers), a per-host cache of the same arrays as ``.npy``
  files, opened memory-mapped. The first process to need a pickle unpickles it once, validates it
  and writes the cache (under a file lock, into a temporary folder renamed into place); every
  process then maps the files copy-on-write (``mmap_mode="c"``).

Pages are shared only while nobody writes them: a write into a copy-on-write map copies its page
into the writing process. So the cache holds the arrays as the runs see them: audio ``-inf``
already zero and, for runs that apply the padding rule (``data.padding``; ``padded``), that too;
MMSA's in-place ``audio[audio == -inf] = 0`` and our padding pass then find nothing to write
(``apply_padding`` writes only values that are not already +0.0) and the pages stay once per host
whatever the number of workers (``bench/shared_cache_memory.py`` measures it). Values are the
bytes the plain loader followed by the padding rule gives; non-array values and object arrays
(ids, raw text of some pickles) are kept in one small pickle, with their types.

Safety: the folder is per user (:func:`default_cache_root`, mode 0700) and is checked before use
(a directory, not a link, owned by this user, no access for others); a folder that fails the check
is not read (its ``objects.pkl`` is unpickled only from a checked folder, and only when this user
owns it). Half-built folders of a killed builder are removed by the next builder (they can only
exist while nobody holds the build lock). A build needs free space for the arrays. Any failure
of the cache (check, space, I/O) falls back to the plain loader with one warning; a bad feature
file is reported as it is by the plain loader.

A cache folder is keyed by the pickle's real path, size, mtime, fingerprint and whether the padding
rule was applied: a changed file gets a new folder (old ones are not removed). One marker per
(dataset, aligned, use_bert) validation keeps a file validated for another configuration from
skipping its checks.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import shutil
import stat
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..errors import DarMmsaError
from .features import DataWarning, fingerprint, load_features, validate_features
from .padding import FRAME_MODALITIES, apply_padding

ENV_FEATURE_CACHE = "DAR_MMSA_FEATURE_CACHE"
MANIFEST = "manifest.json"
OBJECTS = "objects.pkl"
CACHE_VERSION = 2  # 2: padded arrays for unaligned reads
SPACE_MARGIN_BYTES = 64 << 20


class CacheUnusable(Exception):
    """The cache cannot be used here (the plain loader is used instead, with a warning)."""


_KEPT: dict = {}  # at most one entry: (real path, dataset, aligned, use_bert) -> validated data


def keep(path, dataset: str, aligned: bool, use_bert: bool, data) -> None:
    """Hold a validated pickle for the next :func:`load_for_run` (which takes it, whatever it asks
    for): the benchmark validates the first run's file last and keeps it, so that run does not
    unpickle it again."""
    _KEPT.clear()
    _KEPT[(os.path.realpath(path), dataset, bool(aligned), bool(use_bert))] = data


def forget_kept() -> None:
    """Drop what :func:`keep` holds (nothing ran, or this process will not train)."""
    _KEPT.clear()


def default_cache_root() -> Path:
    """This user's cache folder on this host: ``<tmp>/dar_mmsa-feature-cache-<uid>``."""
    return Path(tempfile.gettempdir()) / f"dar_mmsa-feature-cache-{os.geteuid()}"


def load_for_run(path, dataset: str, aligned: bool, use_bert: bool = True, padded: bool = False) -> dict:
    """The validated ``{split: {key: array}}`` of ``path``: the kept object if it is this one; else
    memory-mapped from the host cache when ``$DAR_MMSA_FEATURE_CACHE`` names one (the plain loader,
    with a warning, when the cache fails); else unpickled once. ``padded``: the caller applies the
    padding rule to what it reads (the cached copy then already has it; the others do not)."""
    key = (os.path.realpath(path), dataset, bool(aligned), bool(use_bert))
    kept = _KEPT.pop(key, None)
    _KEPT.clear()
    if kept is not None:
        return kept
    cache_root = os.environ.get(ENV_FEATURE_CACHE)
    if cache_root:
        try:
            return open_cached(path, dataset, aligned, use_bert, cache_root, padded=padded)
        except DarMmsaError:
            raise  # the feature file itself is refused: the cache has nothing to do with it
        except (CacheUnusable, OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            warnings.warn(f"feature cache {cache_root} not used for {path} ({why}): loading it in this process "
                          f"instead", DataWarning, stacklevel=2)
    return load_features(path, dataset, aligned, use_bert)


def check_cache_root(cache_root) -> Path:
    """``cache_root``, created with mode 0700 if absent; :class:`CacheUnusable` unless it is a real
    directory owned by this user that no one else can enter."""
    root = Path(cache_root)
    try:
        root.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode):
        raise CacheUnusable(f"{root} is not a directory")
    if info.st_uid != os.geteuid():
        raise CacheUnusable(f"{root} belongs to another user (uid {info.st_uid})")
    if info.st_mode & 0o077:
        raise CacheUnusable(f"{root} is open to other users (mode {stat.S_IMODE(info.st_mode):o}, must be 700)")
    return root


def cache_folder(path, cache_root, padded: bool = False) -> Path:
    """Where the cache of ``path`` lives under ``cache_root`` (``padded``: the padding rule applied)."""
    path = Path(path).resolve()
    info = path.stat()
    key = hashlib.sha256(f"{CACHE_VERSION}|{path}|{info.st_size}|{info.st_mtime_ns}|{fingerprint(path)}|{padded}"
                         .encode()).hexdigest()[:20]
    return Path(cache_root) / f"{path.parent.parent.name}-{path.stem}-{key}"


def _marker(dataset: str, aligned: bool, use_bert: bool) -> str:
    return f"valid-{dataset}-{'aligned' if aligned else 'unaligned'}-{'bert' if use_bert else 'glove'}"


@contextlib.contextmanager
def _locked(lock_path: Path):
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_cached(path, dataset: str, aligned: bool, use_bert: bool, cache_root, padded: bool = False) -> dict:
    """The arrays of ``path`` memory-mapped from ``cache_root`` (built there first if needed; with the
    padding rule applied to audio/vision when ``padded``)."""
    path = Path(path)
    if not path.is_file():  # the one-line error of the plain loader
        return load_features(path, dataset, aligned, use_bert)
    root = check_cache_root(cache_root)
    folder = cache_folder(path, root, padded=padded)
    marker = _marker(dataset, bool(aligned), use_bert)
    if not (folder / marker).is_file():
        with _locked(folder.with_name(folder.name + ".lock")):
            remove_leftovers(folder)
            if not (folder / MANIFEST).is_file():
                check_free_space(root, path.stat().st_size)
                _build(path, dataset, bool(aligned), use_bert, folder, marker, padded)
            elif not (folder / marker).is_file():
                validate_features(_open(folder), path, dataset, bool(aligned), use_bert)
                (folder / marker).touch()
    return _open(folder)


def remove_leftovers(folder: Path) -> None:
    """Remove the temporary folders of builders of ``folder`` that died (call with its lock held:
    only the holder builds, so any that exist are not in use)."""
    for leftover in folder.parent.glob(f".{folder.name}.*"):
        shutil.rmtree(leftover, ignore_errors=True)


def check_free_space(root: Path, need: int) -> None:
    free = shutil.disk_usage(root).free
    if free < need + SPACE_MARGIN_BYTES:
        raise CacheUnusable(f"{free / 2**20:.0f} MiB free in {root}, a copy of the arrays needs about "
                            f"{(need + SPACE_MARGIN_BYTES) / 2**20:.0f} MiB")


def _is_mappable(value) -> bool:
    return isinstance(value, np.ndarray) and not value.dtype.hasobject and value.size > 0


def pad_frames(items: dict) -> None:
    """The padding rule applied to one split's audio/vision in place (lengths left as they are)."""
    for m in FRAME_MODALITIES:
        if f"{m}_lengths" in items and isinstance(items.get(m), np.ndarray):
            apply_padding(items[m], items[f"{m}_lengths"])


def _build(path: Path, dataset: str, aligned: bool, use_bert: bool, folder: Path, marker: str,
           padded: bool) -> None:
    """Unpickle and validate ``path`` once, write every array as ``.npy``, rename into ``folder``."""
    data = load_features(path, dataset, aligned, use_bert)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        manifest = {"source": str(path.resolve()), "version": CACHE_VERSION, "padded": padded, "splits": {}}
        objects = {}
        for split, items in data.items():
            if padded:
                pad_frames(items)
            manifest["splits"][split] = keys = []
            for key, value in items.items():
                keys.append(key)
                if _is_mappable(value):
                    np.save(tmp / f"{split}.{key}.npy", value, allow_pickle=False)
                else:
                    objects.setdefault(split, {})[key] = value
        del data
        with open(tmp / OBJECTS, "wb") as f:
            pickle.dump(objects, f, protocol=4)
        (tmp / marker).touch()
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        os.chmod(tmp, 0o700)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load_objects(folder: Path) -> dict:
    """The pickled non-array values, unpickled only from a file this user owns and alone can write."""
    with open(folder / OBJECTS, "rb") as f:
        info = os.fstat(f.fileno())
        if info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise CacheUnusable(f"{folder / OBJECTS} is not owned by this user or is writable by others")
        return pickle.load(f)


def _open(folder: Path) -> dict:
    """``{split: {key: value}}`` with every array a copy-on-write map of its ``.npy`` file."""
    manifest = json.loads((folder / MANIFEST).read_text())
    objects = _load_objects(folder)
    data = {}
    for split, keys in manifest["splits"].items():
        data[split] = {}
        for key in keys:
            if key in objects.get(split, {}):
                data[split][key] = objects[split][key]
            else:
                # a plain ndarray view (its base keeps the map open), so nothing downstream sees np.memmap
                data[split][key] = np.load(folder / f"{split}.{key}.npy", mmap_mode="c").view(np.ndarray)
    return data
