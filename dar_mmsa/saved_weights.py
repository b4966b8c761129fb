"""Weights saved by ``MMSA_run`` for our models: ``dar_mmsa.load_run("dar-mosi.pth")`` and ``MMSA_test``.

``MMSA_run`` keeps only the state dict (``<model_save_dir>/<model>-<dataset>.pth``). For our models
``dar_mmsa.mmsa_hooks`` writes the run's final arguments beside it (``<name>.pth.args.json``: the
feature sizes and sequence lengths MMSA's loader took from the data), so the model can be rebuilt as it
was trained; ``config`` (a dict or a JSON file of arguments, as ``MMSA_test`` takes it) is needed for
other ``.pth`` files and overrides the stored arguments, except those sizes. :func:`predict_one_video`
is ``MMSA_test`` for our models: one video's unpadded features (MMSA-FET's layout), padded to the
trained sizes and scored through the model's own evaluation path (:class:`dar_mmsa.inference.Predictor`).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .errors import ConfigError, DataError

ARGS_SUFFIX = ".args.json"


def saved_args_path(weights_path) -> Path:
    """Where ``MMSA_run``'s final arguments of our model are kept beside its ``.pth``."""
    return Path(str(weights_path) + ARGS_SUFFIX)


def config_args(config) -> dict:
    """``MMSA_test``'s ``config``: a dict, or the path of a JSON file of arguments."""
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, (str, os.PathLike)):
        try:
            with open(config) as f:
                loaded = json.load(f)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read config {config} ({exc}): pass a dict or a JSON file of arguments, "
                              f"e.g. MMSA.get_config_regression(model, dataset)") from None
        if isinstance(loaded, Mapping):
            return dict(loaded)
    raise ConfigError(f"config must be a dict or a JSON file of arguments, got {type(config).__name__}: pass e.g. "
                      f"MMSA.get_config_regression(model, dataset)")


def load_weights(weights_path: Path, config, pretrained, device, batch_size):
    """A :class:`Predictor` for a ``.pth`` saved by ``MMSA_run`` (see the module docstring)."""
    from easydict import EasyDict

    from . import runner

    saved = saved_args_path(weights_path)
    args = {}
    if saved.is_file():
        args.update(config_args(saved))
    if config is not None:
        given = config_args(config)
        # the sizes MMSA's loader took from the training data beat the config file's defaults
        sizes = {k: args[k] for k in ("feature_dims", "seq_lens") if k in args}
        args.update(given, **sizes)
    if not args.get("model_name"):
        raise ConfigError(f"{weights_path} has no {saved.name} beside it: pass config= (e.g. "
                          f"MMSA.get_config_regression(model, dataset) with the config= overrides it was trained with)")
    args = EasyDict(args)
    if pretrained is not None:
        args.pretrained = str(pretrained)
    args.update(device=runner.resolve_device(device), model_save_path=weights_path, train_mode="regression")
    for key in ("custom_feature", "feature_T", "feature_A", "feature_V"):
        args.setdefault(key, None if key == "custom_feature" else "")
    seed = int(args.get("seed") or 1111)
    torch.manual_seed(seed)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            model = runner.load_checkpoint(runner.build_model(args), args)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise ConfigError(f"{weights_path} does not fit {args.model_name} built from this config ({first}): pass the "
                          f"config it was trained with") from None
    model.eval()
    record = {"run_id": weights_path.name, "seed": seed, "model": args.model_name, "dataset": args.dataset_name}
    from .inference import Predictor

    return Predictor(weights_path.parent, record, args, model, int(batch_size or args.get("batch_size") or 32))


def _fit_frames(frames: np.ndarray, steps: Optional[int]) -> tuple:
    """(frames zero-padded or cut to ``steps``, the video's length within them)."""
    length = len(frames)
    if not steps:
        return frames, length
    fitted = np.zeros((steps,) + frames.shape[1:], np.float32)
    fitted[:min(length, steps)] = frames[:steps]
    return fitted, min(length, steps)


def predict_one_video(config, weights_path, feature_path, device: str = "cpu") -> np.float32:
    """``MMSA_test`` for our models: the score of one video's features (MMSA-FET's layout: ``text_bert``
    (3, L), ``audio`` (T_a, D_a), ``vision`` (T_v, D_v), unpadded), padded to the trained sizes."""
    from .inference import load_run

    predictor = load_run(weights_path, config=config, device=device)
    try:
        with open(feature_path, "rb") as f:
            feature = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise DataError(f"cannot read features {feature_path} ({exc}): pass one video's feature pickle") from None
    seq_lens = list(predictor.args.get("seq_lens") or [None, None, None])
    text = np.asarray(feature["text_bert"], np.float32)
    aligned = bool(predictor.args.get("need_data_aligned"))
    audio, audio_len = _fit_frames(np.asarray(feature["audio"], np.float32), text.shape[-1] if aligned else seq_lens[1])
    vision, vision_len = _fit_frames(np.asarray(feature["vision"], np.float32),
                                     text.shape[-1] if aligned else seq_lens[2])
    scores = predictor(text[None], audio[None], vision[None], audio_lengths=[audio_len], vision_lengths=[vision_len])
    return np.float32(scores[0])
