"""Load and validate MMSA feature pickles (``{split: {key: array}}``) before any model sees them.

``validate_features`` is the pure checker: it raises ``DataError`` with one line naming the file,
split and key, what was expected and how to fix it. ``load_features`` reads the pickle, validates
it, then does what MMSA's loader does to audio (``-inf`` -> 0) and warns with the count.

Checks per split (``train``/``valid``/``test``): the keys MMSA reads are present (``text_bert``
or ``text``, ``audio``, ``vision``, ``regression_labels``, ``id``, ``raw_text``, and the
``*_lengths`` of unaligned files); ``text_bert`` is float (N,3,L) with non-negative integer ids
and segment ids and a 0/1 attention mask; ``text``/``audio``/``vision`` are float and 3-D; L and the audio and
vision feature sizes are the train split's in every split (taken from the data, as MMSA's loader
takes them; aligned files: L steps); every key has the same N; no NaN or +inf
anywhere and no -inf outside audio; labels lie in [-3, 3] (CH-SIMS: [-1, 1], and its unimodal
``regression_labels_T/A/V``, which MMSA's loader reads for SIMS, are present and obey the same
rules); unaligned lengths are non-negative integers. Those are the only refusals: nobody can run on
such a file.

Accepted with one warning per file and split (:mod:`dar_mmsa.data.padding`), as MMSA's and LNLN's
loaders accept them: non-zero frames at or after a sample's length (the protocol treats them as
padding and every model sees zeros there, at every rate), lengths above T (clipped to T), and a
stream that looks front-padded. Lengths in aligned files are ignored, as MMSA ignores them. Large
arrays are scanned in chunks so that a check never allocates more than a few tens of MB.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dar_mmsa.data.padding import padding_findings, padding_message
from dar_mmsa.data.synthetic import FEATURE_DIMS, SPLITS
from dar_mmsa.errors import ConfigError, DataError

LABEL_RANGE = (-3.0, 3.0)
LABEL_RANGES = {"sims": (-1.0, 1.0)}  # other datasets: LABEL_RANGE
UNIMODAL_LABEL_KEYS = {"sims": ("regression_labels_T", "regression_labels_A", "regression_labels_V")}
FULL_HASH_LIMIT = 64 << 20
EDGE_BYTES = 1 << 20
_CHUNK_BYTES = 32 << 20
_FIX_MISSING = ("generate synthetic data with `python -m dar_mmsa.data.synthetic --root DIR` or pass "
                "--data-root pointing at the MMSA dataset root (the folder holding MOSI/ and MOSEI/)")
_FIX_BAD = ("re-export the features in MMSA's format, or regenerate synthetic data with "
            "`python -m dar_mmsa.data.synthetic --root DIR`")


def _error(path, split, key, problem, fix=_FIX_BAD) -> DataError:
    """One-line DataError naming the file, split and key."""
    where = f"{path}"
    if split is not None:
        where += f" [split '{split}'" + (f", key '{key}'" if key is not None else "") + "]"
    return DataError(" ".join(f"{where}: {problem}; fix: {fix}".split()))


def required_keys(aligned: bool, use_bert: bool = True) -> tuple[str, ...]:
    """The keys of a split that MMSA's ``MMDataset`` reads for this configuration."""
    keys = ("text_bert" if use_bert else "text", "audio", "vision", "regression_labels", "id",
            "raw_text")
    return keys if aligned else keys + ("audio_lengths", "vision_lengths")


def _chunks(arr: np.ndarray):
    """Yield (start, view) slices of ``arr`` along axis 0 of at most ~``_CHUNK_BYTES`` each."""
    row_bytes = max(1, arr[:1].nbytes)
    rows = max(1, _CHUNK_BYTES // row_bytes)
    for start in range(0, len(arr), rows):
        yield start, arr[start:start + rows]


def _nonfinite_counts(arr: np.ndarray) -> tuple[int, int, int]:
    """Counts of (NaN, +inf, -inf) in a float array, scanned in chunks."""
    nan = pos = neg = 0
    for _, chunk in _chunks(arr):
        # A finite sum proves every value is finite (NaN/inf propagate); only then skip the mask.
        if np.isfinite(chunk.sum()):
            continue
        finite = np.isfinite(chunk)
        bad = chunk[~finite]
        n_nan = int(np.isnan(bad).sum())
        n_pos = int((bad == np.inf).sum())
        nan, pos, neg = nan + n_nan, pos + n_pos, neg + bad.size - n_nan - n_pos
    return nan, pos, neg


def _as_array(value, path, split, key) -> np.ndarray:
    """``value`` as an ndarray (MMSA accepts lists for labels, lengths, ids and text)."""
    try:
        arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    except (TypeError, ValueError) as err:
        raise _error(path, split, key, f"expected an array, got {type(value).__name__} ({err})")
    if arr.ndim == 0:
        raise _error(path, split, key, f"expected one entry per sample, got a scalar {type(value).__name__}")
    return arr


def _check_float(arr, path, split, key) -> None:
    """Float dtype required (MMSA casts with ``astype(np.float32)``; ints would hide bugs)."""
    if not np.issubdtype(arr.dtype, np.floating):
        raise _error(path, split, key, f"expected a float array, got dtype {arr.dtype}")


def _check_finite(arr, path, split, key, allow_neg_inf=False) -> None:
    """No NaN or +inf; no -inf unless allowed (audio)."""
    nan, pos, neg = _nonfinite_counts(arr)
    if nan or pos or (neg and not allow_neg_inf):
        found = f"{nan} NaN, {pos} +inf" + ("" if allow_neg_inf else f", {neg} -inf")
        allowed = "finite values (only -inf is tolerated, and zeroed)" if allow_neg_inf else "finite values"
        raise _error(path, split, key, f"expected {allowed}, found {found}")


def _check_shape(arr, path, split, key, ndim, tail=None, n=None) -> None:
    """``arr.ndim == ndim``, trailing dims equal to ``tail`` (None entries free), first dim ``n``."""
    if arr.ndim != ndim:
        raise _error(path, split, key, f"expected a {ndim}-D array, got shape {arr.shape}")
    if tail is not None and any(want is not None and got != want for got, want in zip(arr.shape[1:], tail)):
        want = "(N, " + ", ".join("*" if w is None else str(w) for w in tail) + ")"
        raise _error(path, split, key, f"expected shape {want}, got {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise _error(path, split, key, f"expected {n} samples (like the other keys), got {arr.shape[0]}")


def _check_text_bert(arr, path, split) -> None:
    """Ids and segment ids are non-negative integers; the attention mask is 0/1."""
    for row, name in ((0, "token ids (row 0)"), (2, "segment ids (row 2)")):
        values = arr[:, row]
        if not np.array_equal(values, np.round(values)) or (values < 0).any():
            raise _error(path, split, "text_bert", f"expected {name} to be non-negative integers")
    mask = arr[:, 1]
    if not ((mask == 0) | (mask == 1)).all():
        raise _error(path, split, "text_bert", "expected the attention mask (row 1) to be 0 or 1, "
                                               f"found values such as {np.unique(mask)[:5].tolist()}")


def _check_labels(labels, path, split, key="regression_labels", dataset=None) -> None:
    """Regression labels are finite floats within the dataset's range (``LABEL_RANGES``, else ``LABEL_RANGE``)."""
    _check_float(labels, path, split, key)
    _check_finite(labels, path, split, key)
    low, high = LABEL_RANGES.get(dataset, LABEL_RANGE)
    if labels.size and (labels.min() < low or labels.max() > high):
        raise _error(path, split, key, f"expected values in [{low:g}, {high:g}]"
                                       f"{' (' + dataset.upper() + ' labels)' if dataset in LABEL_RANGES else ''}, "
                                       f"got [{labels.min():g}, {labels.max():g}]")


def _check_lengths(lengths, frames, path, split, key) -> None:
    """Integer, non-negative lengths (those above T are accepted: see :func:`padding_findings`)."""
    if lengths.dtype.kind not in "iuf" or (lengths.dtype.kind == "f" and not
                                           np.array_equal(lengths, np.round(lengths))):
        raise _error(path, split, key, f"expected integer lengths, got dtype {lengths.dtype}")
    if lengths.size and lengths.min() < 0:
        raise _error(path, split, key, f"expected lengths in [0, {frames.shape[1]}], "
                                       f"got [{lengths.min():g}, {lengths.max():g}]")


def _check_sequence(arr, path, split, key, dim, t_len, n, allow_neg_inf=False) -> None:
    """A float (N, T, D) feature array with the given D (and T, if not None)."""
    _check_shape(arr, path, split, key, 3, (t_len, dim), n)
    _check_float(arr, path, split, key)
    _check_finite(arr, path, split, key, allow_neg_inf=allow_neg_inf)


def data_sizes(data) -> dict:
    """Sizes the train split fixes for every split: ``text_bert``'s length, audio's and vision's feature
    sizes. Read from the data, as MMSA's loader reads them (MMSA-FET writes any sizes); None when the
    train split does not have them (its own checks then say why)."""
    train = data.get("train") if isinstance(data, Mapping) else None
    sizes = {}
    for key in ("text_bert", "audio", "vision"):
        shape = getattr(train.get(key), "shape", None) if isinstance(train, Mapping) else None
        sizes[key] = int(shape[2]) if shape is not None and len(shape) == 3 else None
    return sizes


def _validate_split(split_data, path, split, dataset, aligned, use_bert, sizes=None) -> None:
    """All checks of one split (see the module docstring); ``sizes`` from :func:`data_sizes`."""
    sizes = sizes or {}
    if not isinstance(split_data, Mapping):
        raise _error(path, split, None, f"expected a dict of arrays, got {type(split_data).__name__}")
    for key in required_keys(aligned, use_bert) + UNIMODAL_LABEL_KEYS.get(dataset, ()):
        if key not in split_data:
            raise _error(path, split, key, f"missing key (present: {sorted(split_data)})")
    text_key = "text_bert" if use_bert else "text"
    n = len(_as_array(split_data[text_key], path, split, text_key))
    if "text_bert" in split_data:
        text_bert = _as_array(split_data["text_bert"], path, split, "text_bert")
        _check_shape(text_bert, path, split, "text_bert", 3, (3, sizes.get("text_bert")), n)
        _check_float(text_bert, path, split, "text_bert")
        _check_finite(text_bert, path, split, "text_bert")
        _check_text_bert(text_bert, path, split)
    if "text" in split_data:
        text = _as_array(split_data["text"], path, split, "text")
        _check_sequence(text, path, split, "text", None, None, n)
    t_aligned = sizes.get("text_bert") if aligned else None
    audio_dim, vision_dim = sizes.get("audio"), sizes.get("vision")
    audio = _as_array(split_data["audio"], path, split, "audio")
    _check_sequence(audio, path, split, "audio", audio_dim, t_aligned, n, allow_neg_inf=True)
    vision = _as_array(split_data["vision"], path, split, "vision")
    _check_sequence(vision, path, split, "vision", vision_dim, t_aligned, n)
    for key in ("regression_labels",) + UNIMODAL_LABEL_KEYS.get(dataset, ()):
        labels = _as_array(split_data[key], path, split, key)
        if labels.ndim not in (1, 2) or labels.shape[0] != n or labels.size != n:
            raise _error(path, split, key, f"expected shape ({n},), got {labels.shape}")
        _check_labels(labels, path, split, key, dataset)
    for key in ("id", "raw_text"):
        if len(split_data[key]) != n:
            raise _error(path, split, key, f"expected {n} entries (like the other keys), "
                                           f"got {len(split_data[key])}")
    if not aligned:
        for key, frames in (("audio_lengths", audio), ("vision_lengths", vision)):
            lengths = _as_array(split_data[key], path, split, key)
            _check_shape(lengths, path, split, key, 1, None, n)
            _check_lengths(lengths, frames, path, split, key)


def validate_features(data, path, dataset: str, aligned: bool, use_bert: bool = True) -> None:
    """Raise ``DataError`` if ``data`` (a loaded pickle) is not valid MMSA input; never modifies it."""
    if dataset not in FEATURE_DIMS:
        raise ConfigError(f"unknown dataset '{dataset}': expected one of {sorted(FEATURE_DIMS)}")
    if not isinstance(data, Mapping):
        raise _error(path, None, None, f"expected a dict with splits {list(SPLITS)}, "
                                       f"got {type(data).__name__}")
    for split in SPLITS:
        if split not in data:
            raise _error(path, split, None, f"missing split (present: {sorted(map(str, data))})")
        _validate_split(data[split], path, split, dataset, bool(aligned), use_bert, data_sizes(data))


def _read_pickle(path: Path):
    """Unpickle ``path``, turning a missing or unreadable file into a one-line DataError."""
    if not path.is_file():
        raise _error(path, None, None, "feature file not found", _FIX_MISSING)
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except MemoryError:
        raise
    except Exception as err:  # a corrupt pickle can raise almost anything
        raise _error(path, None, None, f"cannot unpickle ({type(err).__name__}: {err})") from err


def zero_negative_inf(data) -> dict:
    """Replace -inf in every split's audio by 0 in place (as MMSA does); returns {split: count}."""
    counts = {}
    for split in SPLITS:
        audio = data[split]["audio"]
        count = 0
        for _, chunk in _chunks(audio):
            if chunk.size == 0 or chunk.min() > -np.inf:
                continue
            hit = chunk == -np.inf
            n_hit = int(hit.sum())
            if n_hit:
                chunk[hit] = 0.0
                count += n_hit
        counts[split] = count
    return counts


class DataWarning(UserWarning):
    """A feature file is accepted, but something in it changes what the models see."""


@contextlib.contextmanager
def plain_data_warnings():
    """Within: a :class:`DataWarning` prints as one ``warning: ...`` line on stderr (for the CLIs)."""
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, DataWarning):
                print(f"warning: {message}", file=file or sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


_WARNED: set = set()  # padding warnings already given in this process (a file is checked more than once)


def padding_warnings(data, path, aligned: bool) -> list:
    """The padding warnings of a validated file, one per split at most (none for aligned files)."""
    if aligned:
        return []
    messages = (padding_message(path, split, padding_findings(data[split])) for split in SPLITS)
    return [m for m in messages if m]


def warn_padding(data, path, aligned: bool) -> None:
    """Warn (once per process and message) about what the padding rule changes in this file."""
    for message in padding_warnings(data, path, aligned):
        if message not in _WARNED:
            _WARNED.add(message)
            warnings.warn(message, DataWarning, stacklevel=3)


def prepare_features(data, path, dataset: str, aligned: bool, use_bert: bool = True) -> dict:
    """Validate a loaded pickle and zero its audio ``-inf`` in place (with a warning); returns ``data``.

    Works on the arrays as they are (chunk by chunk, no full copies), so the caller can hand the
    same arrays on to MMSA.
    """
    path = Path(path)
    validate_features(data, path, dataset, aligned, use_bert)
    warn_padding(data, path, bool(aligned))
    counts = zero_negative_inf(data)
    if sum(counts.values()):
        detail = ", ".join(f"{split}: {n}" for split, n in counts.items() if n)
        warnings.warn(f"{path}: replaced {sum(counts.values())} -inf audio values with 0 ({detail}), "
                      f"as MMSA's loader does", DataWarning, stacklevel=3)
    return data


def load_features(path, dataset: str, aligned: bool, use_bert: bool = True) -> dict:
    """Load an MMSA feature pickle (one unpickling), validate it and zero audio ``-inf`` (with a warning)."""
    path = Path(path)
    return prepare_features(_read_pickle(path), path, dataset, aligned, use_bert)


def fingerprint(path) -> str:
    """A content fingerprint of a data file, independent of its mtime and name.

    Files under 64 MiB: ``sha256:<hex>`` of the whole content. Larger files:
    ``sha256-size-edges:<hex>``, the sha256 of the size (8 bytes) plus the first and last MiB,
    which reads 2 MiB whatever the size (the real MOSEI pickles are several GB). It tells the data
    sets and generator versions apart; it cannot see an edit confined to the middle of a big file.
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if size < FULL_HASH_LIMIT:
            for block in iter(lambda: f.read(EDGE_BYTES), b""):
                digest.update(block)
            return f"sha256:{digest.hexdigest()}"
        digest.update(size.to_bytes(8, "little"))
        digest.update(f.read(EDGE_BYTES))
        f.seek(size - EDGE_BYTES, os.SEEK_SET)
        digest.update(f.read(EDGE_BYTES))
    return f"sha256-size-edges:{digest.hexdigest()}"
