"""The feature files MMSA reads for a run besides ``featurePath``: ``custom_feature`` and ``feature_T/A/V``.

MMSA's ``MMDataset`` reads ``custom_feature`` instead of ``featurePath`` when it is set (MMSA-FET's
"use my own features"), then replaces text, audio or vision (and their lengths) by the same key of
``feature_T`` / ``feature_A`` / ``feature_V`` when those are set. :func:`read_path` names the file that
is read whole; :func:`check_modality_files` checks the single-modality files before MMSA opens them,
each with one line naming the file, split and key.
"""
from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dar_mmsa.data.synthetic import SPLITS
from dar_mmsa.errors import DataError

MODALITY_FILES = {"feature_T": "text", "feature_A": "audio", "feature_V": "vision"}


def read_path(args) -> str:
    """The feature file MMSA's loader reads whole: ``custom_feature`` if set, else ``featurePath``."""
    return str(args.get("custom_feature") or args["featurePath"])


def _keys(option: str, args) -> tuple:
    modality = MODALITY_FILES[option]
    if modality == "text":
        return ("text_bert" if args.get("use_bert") else "text",)
    return (modality,) if args.get("need_data_aligned") else (modality, f"{modality}_lengths")


def _fail(path, split, key, problem) -> DataError:
    where = f"{path}" + (f" [split '{split}'" + (f", key '{key}'" if key else "") + "]" if split else "")
    return DataError(f"{where}: {problem}; fix: pass a feature file in MMSA's format ({{split: {{key: array}}}}, "
                     f"as MMSA-FET writes it) or leave the option empty")


def _load(path: Path, option: str):
    if not path.is_file():
        raise DataError(f"{option} file {path} not found: pass an existing feature pickle or leave {option} empty")
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except Exception as err:  # a corrupt pickle can raise almost anything
        raise _fail(path, None, None, f"cannot unpickle ({type(err).__name__}: {err})") from None


def check_modality_file(option: str, args, data) -> None:
    """Check ``args[option]`` (one of ``feature_T/A/V``) against the main file's ``data``: every split,
    its key(s), as many samples as ``data``, float 3-D features of one size in every split."""
    path = Path(str(args[option])).expanduser()
    loaded = _load(path, option)
    if not isinstance(loaded, Mapping):
        raise _fail(path, None, None, f"expected a dict with splits {list(SPLITS)}, got {type(loaded).__name__}")
    sizes = set()
    for split in SPLITS:
        part = loaded.get(split)
        if not isinstance(part, Mapping):
            raise _fail(path, split, None, "missing split" if part is None else "expected a dict of arrays")
        n = len(data[split]["regression_labels"])
        for key in _keys(option, args):
            if key not in part:
                raise _fail(path, split, key, f"missing key (present: {sorted(map(str, part))})")
            value = np.asarray(part[key])
            if len(value) != n:
                raise _fail(path, split, key, f"expected {n} samples (as {read_path(args)}), got {len(value)}")
            if key.endswith("_lengths"):
                if value.dtype.kind not in "iuf" or (value.size and value.min() < 0):
                    raise _fail(path, split, key, "expected non-negative integer lengths")
                continue
            if value.ndim != 3 or value.dtype.kind != "f":
                raise _fail(path, split, key, f"expected a float (N, T, D) array, got {value.dtype} {value.shape}")
            if not np.isfinite(value[value != -np.inf] if key == "audio" else value).all():
                raise _fail(path, split, key, "expected finite values (NaN or inf found)")
            sizes.add(value.shape[1:] if key == "text_bert" else value.shape[2])
    if len(sizes) > 1:
        raise _fail(path, None, None, f"feature sizes differ between splits ({sorted(map(str, sizes))})")


def check_modality_files(args, data) -> None:
    """:func:`check_modality_file` for every ``feature_T/A/V`` the run sets."""
    for option in MODALITY_FILES:
        if args.get(option):
            check_modality_file(option, args, data)
