"""The only module that touches MMSA's internals.

:func:`register` (run by ``import dar_mmsa``; idempotent) teaches MMSA 2.2.1 to build our models and
trainers by name (``AMIO``, ``ATIO``), to find their default configs (``get_config_regression`` /
``get_config_tune`` with or without a config file: our entries are added to the file's where it has
none, MMSA's are never replaced), to read and check their data (``MMDataLoader``), and to test them
on one video (``MMSA_test``). For MMSA's own models it changes nothing but these crashes of stock
MMSA 2.2.1 on current torch/transformers/numpy and on CPU (listed in ``docs/benchmark.md``,
"MMSA compatibility shims"):

* ``MMSA_run`` calls ``torch.cuda.set_device`` on the CPU device: the ``torch`` that ``MMSA.run``
  sees ignores that call for non-CUDA devices;
* MMIM, MulT, MCTN and TFR-Net pass ``verbose=`` to ``ReduceLROnPlateau``, which torch 2.13 rejects;
* TFR-Net's text encoder ignores ``pretrained`` and asks the hub for ``bert-base-uncased``;
* a local ``pretrained`` directory without ``vocab.txt`` (transformers 5 then returns a 5-token
  tokenizer silently) fails at once with one line;
* numpy 2 scalars reach MMSA's result CSV as ``np.float64(...)``: ``MMSA_run`` prints with numpy's
  1.25 scalar repr;
* TFR-Net's masks (``generate_m``) use lengths clipped to T (a length above T built a ragged array).

What the benchmark harness corrects in MMSA's behaviour (sample-weighted ``Loss``, zeros past the
lengths, a ``max_epochs`` cap, ``do_test`` evaluating the model it is given) is applied by
:mod:`dar_mmsa.runner` (:mod:`dar_mmsa.training.mmsa_trainer`, :func:`harness_loaders`), per run, as
recorded options; never by importing.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import os
import pickle
from typing import Optional

import numpy as np
import torch
from torch import nn

from .registry import _MODELS, ENV_DATA_ROOT, ENV_PRETRAINED, RunState

_PRETRAINED = contextvars.ContextVar("dar_mmsa_pretrained", default=None)
# keys the current ``MMSA_run(config=...)`` overrides: an explicit ``pretrained`` there beats the env var
_CONFIG_KEYS = contextvars.ContextVar("dar_mmsa_config_keys", default=frozenset())
# run-config keys of the harness's corrections of MMSA's behaviour (absent or false: stock MMSA)
PAD_PAST_LENGTHS = "pad_past_lengths"
SAMPLE_WEIGHTED_LOSS = "sample_weighted_loss"


def is_ours(args_or_name) -> bool:
    name = args_or_name if isinstance(args_or_name, str) else args_or_name.get("model_name", "")
    return str(name).lower() in _MODELS


# ----------------------------------------------------------------------------- config
def resolve_run_paths(args, *, pretrained_from_env: bool = True) -> None:
    """Fill a relative ``featurePath`` from ``DAR_MMSA_DATA_ROOT``; resolve ``pretrained`` to a local
    BERT (``DAR_MMSA_PRETRAINED`` first when ``pretrained_from_env``), failing in one line if absent."""
    root = os.environ.get(ENV_DATA_ROOT)
    if root and not os.path.isabs(str(args.get("featurePath", ""))):
        args["featurePath"] = os.path.join(root, args["featurePath"])
    if args.get("use_bert"):
        from .text_encoder import check_tokenizer, resolve_pretrained

        wanted = (pretrained_from_env and os.environ.get(ENV_PRETRAINED)) or args.get("pretrained")
        args["pretrained"] = resolve_pretrained(wanted)
        if os.path.isdir(args["pretrained"]):
            check_tokenizer(args["pretrained"])


def _config_loader(original, kind: str):
    """MMSA's ``get_config_regression`` / ``get_config_tune``: for a model of ours that the file has no
    entry for, the file with our entries added (``dar_mmsa.config.merged_config_file``)."""
    @functools.wraps(original)
    def get_config(model_name, dataset_name, config_file="", *rest, **kwargs):
        if is_ours(model_name):
            from .config import merged_config_file
            from .registry import check_model_dataset

            check_model_dataset(model_name, dataset_name)
            config_file = merged_config_file(config_file, kind, model_name.lower())
        # paths are resolved when the run starts (``_run_hook``): MMSA applies ``config=`` after this
        return original(model_name, dataset_name, config_file, *rest, **kwargs)

    return get_config


def _run_hook(original):
    """``MMSA.run._run(args, ...)``, entered with the final arguments (file + ``config=`` overrides)."""
    @functools.wraps(original)
    def _run(args, *rest, **kwargs):
        if not is_ours(args):
            if args.get("use_bert") and os.path.isdir(str(args.get("pretrained", ""))):
                from .text_encoder import check_tokenizer

                check_tokenizer(args["pretrained"])
            return original(args, *rest, **kwargs)
        resolve_run_paths(args, pretrained_from_env="pretrained" not in _CONFIG_KEYS.get())
        results = original(args, *rest, **kwargs)
        save_run_args(args)
        return results

    return _run


def save_run_args(args) -> None:
    """Our model's final arguments (sizes from the data included) beside the ``.pth`` ``MMSA_run`` kept,
    for ``MMSA_test`` and ``dar_mmsa.load_run``."""
    import json

    from .saved_weights import saved_args_path

    weights = args.get("model_save_path")
    if weights and os.path.isfile(weights):
        keep = {k: v for k, v in dict(args).items() if k not in ("device", "model_save_path")}
        saved_args_path(weights).write_text(json.dumps(keep, indent=1, sort_keys=True, default=str) + "\n")


# ----------------------------------------------------------------------------- AMIO / ATIO
def _amio_init(original):
    @functools.wraps(original)
    def __init__(self, args):
        entry = _MODELS.get(args["model_name"])
        token = _PRETRAINED.set(args.get("pretrained"))
        try:
            if entry is None:
                return original(self, args)
            nn.Module.__init__(self)
            self.need_model_aligned = False  # our models align inside themselves
            self.Model = entry.model(args)
        finally:
            _PRETRAINED.reset(token)

    return __init__


def _atio_get_train(original):
    @functools.wraps(original)
    def getTrain(self, args):
        entry = _MODELS.get(args["model_name"])
        if entry is not None:
            return entry.trainer_class()(args)
        return original(self, args)

    return getTrain


class _SharedArray(np.ndarray):
    """A view whose ``astype`` to its own dtype (and nothing else) is a plain view, not a copy.

    MMSA's ``MMDataset`` casts every feature array with ``astype(np.float32)``, which copies even
    float32 arrays: given these views, its datasets share the arrays we loaded and validated.
    """

    def astype(self, dtype, *args, **kwargs):
        plain = self.view(np.ndarray)
        if not args and not kwargs and np.dtype(dtype) == self.dtype:
            return plain
        return plain.astype(dtype, *args, **kwargs)


_SHARED_KEYS = ("text_bert", "text", "audio", "vision")


class _ServedPickle:
    """``pickle`` as ``MMSA.data_loader`` sees it while our hook builds its datasets: loading the
    feature file we already hold returns that object (its feature arrays as :class:`_SharedArray`
    views) instead of unpickling it once per split; any other file is unpickled as usual."""

    def __init__(self, path, data):
        self.path = os.path.realpath(path)
        self.data = {split: {key: value.view(_SharedArray) if key in _SHARED_KEYS and isinstance(value, np.ndarray)
                             else value for key, value in items.items()}
                     for split, items in data.items()}

    def load(self, file, *args, **kwargs):
        name = getattr(file, "name", None)
        if isinstance(name, (str, bytes, os.PathLike)) and os.path.realpath(name) == self.path:
            return self.data
        return pickle.load(file, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(pickle, name)


@contextlib.contextmanager
def serving_features(path, data):
    """While inside, MMSA's ``MMDataset`` reads ``path`` from ``data`` (no unpickling, no cast copies)."""
    module = importlib.import_module("MMSA.data_loader")
    original = module.pickle
    module.pickle = _ServedPickle(path, data)
    try:
        yield
    finally:
        module.pickle = original


def harness_loaders(args, num_workers: int = 0, *, pad: Optional[bool] = None):
    """MMSA's ``MMDataLoader`` on the file MMSA reads (``custom_feature`` if set, else ``featurePath``),
    validated first (and the ``feature_T/A/V`` files too) and loaded once; positions past the lengths
    are zeroed when ``pad`` (default: for our models, or when the run sets ``pad_past_lengths``).
    ``train_samples`` is set from the data (Self-MM and TETFN index per-sample state by it)."""
    import MMSA.data_loader as data_loader

    from .data.feature_cache import load_for_run
    from .data.modality_files import check_modality_files, read_path

    path = read_path(args)
    if pad is None:
        pad = is_ours(args) or bool(args.get(PAD_PAST_LENGTHS))
    aligned = bool(args.get("need_data_aligned"))
    # a per-host cache then holds the padded arrays: the pass below finds nothing to write in its shared pages
    data = load_for_run(path, args["dataset_name"], aligned=aligned, use_bert=bool(args.get("use_bert")),
                        padded=pad and not aligned)
    check_modality_files(args, data)
    with serving_features(path, data):
        loaders = getattr(data_loader.MMDataLoader, "__wrapped__", data_loader.MMDataLoader)(args, num_workers)
    if pad:
        apply_padding(loaders)
    del data  # what MMSA does not read (GloVe text with BERT, class labels) is freed here
    args["train_samples"] = len(loaders["train"].dataset)
    return loaders


def _data_loader(original):
    @functools.wraps(original)
    def MMDataLoader(args, num_workers=4):
        if not is_ours(args):
            return original(args, num_workers)
        return harness_loaders(args, num_workers, pad=True)

    return MMDataLoader


def apply_padding(loaders) -> None:
    """Positions t >= length are zeros in every split MMSA loaded, lengths clipped to T (LNLN's rule)."""
    from .data.padding import apply_padding_to_dataset

    for loader in loaders.values():
        apply_padding_to_dataset(loader.dataset)


def _generate_m(original):
    """TFR-Net's masks (``MMDataset.generate_m``) from lengths clipped to T: a length above T would
    make MMSA build a ragged mask and fail."""
    @functools.wraps(original)
    def generate_m(self, modality, input_mask, input_len, missing_rate, missing_seed, mode="text"):
        if mode in ("audio", "vision") and input_len is not None:
            input_len = np.clip(np.asarray(input_len).astype(np.int64), 0, modality.shape[1])
        return original(self, modality, input_mask, input_len, missing_rate, missing_seed, mode)

    return generate_m


def _mmsa_test(original):
    """``MMSA_test(config, weights_path, feature_path, gpu_id)``: our models go through
    :mod:`dar_mmsa.saved_weights` (the trained sizes, the sample padded to them)."""
    @functools.wraps(original)
    def MMSA_test(config, weights_path, feature_path, gpu_id=0):
        from .saved_weights import config_args, predict_one_video

        try:
            name = config_args(config).get("model_name")
        except Exception:  # whatever MMSA makes of it
            name = None
        if not is_ours(str(name)):
            return original(config, weights_path, feature_path, gpu_id)
        device = "cpu" if gpu_id < 0 else f"cuda:{gpu_id}"
        return predict_one_video(config, weights_path, feature_path, device=device)

    return MMSA_test


# ----------------------------------------------------------------------------- CPU / torch / numpy
class _CudaProxy:
    def __getattr__(self, name):
        return getattr(torch.cuda, name)

    @staticmethod
    def set_device(device):
        if torch.device(device).type == "cuda":
            torch.cuda.set_device(device)


class _TorchProxy:
    """``torch`` as ``MMSA.run`` sees it: identical except ``cuda.set_device`` on CPU is a no-op."""

    cuda = _CudaProxy()

    def __getattr__(self, name):
        return getattr(torch, name)


class ReduceLROnPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """Accepts (and ignores) the ``verbose`` argument current torch removed."""

    def __init__(self, optimizer, *args, verbose=None, **kwargs):
        super().__init__(optimizer, *args, **kwargs)


def _bert_text_encoder(original_cls):
    """TFR-Net builds ``BertTextEncoder(use_finetune=...)`` with no ``pretrained``: supply the configured one."""

    def BertTextEncoder(use_finetune=False, transformers="bert", pretrained=None):
        return original_cls(use_finetune=use_finetune, transformers=transformers,
                            pretrained=pretrained or _PRETRAINED.get() or "bert-base-uncased")

    return BertTextEncoder


def _setup_seed(original):
    @functools.wraps(original)
    def setup_seed(seed):
        RunState.seed = int(seed)
        return original(seed)

    return setup_seed


def _mmsa_run(original):
    @functools.wraps(original)
    def MMSA_run(*args, **kwargs):
        config = kwargs.get("config", args[3] if len(args) > 3 else None)
        token = _CONFIG_KEYS.set(frozenset(config) if isinstance(config, dict) else frozenset())
        try:
            with np.printoptions(legacy="1.25"):  # plain numbers, not np.float64(...), in MMSA's CSV
                return original(*args, **kwargs)
        finally:
            _CONFIG_KEYS.reset(token)

    return MMSA_run


# ----------------------------------------------------------------------------- install
_INSTALLED = False


def _patch(obj, name: str, wrapper) -> None:
    original = getattr(obj, name)
    if getattr(original, "__dar_mmsa__", False):
        return
    patched = wrapper(original)
    patched.__dar_mmsa__ = True
    setattr(obj, name, patched)


def register() -> None:
    """Install our models and the crash shims into the imported MMSA (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    import MMSA
    import MMSA.config as mmsa_config
    import MMSA.data_loader as data_loader
    import MMSA.run as run
    from MMSA.models import AMIO
    from MMSA.trains import ATIO

    from . import models  # noqa: F401  -- registers our models

    _patch(AMIO, "__init__", _amio_init)
    _patch(ATIO, "getTrain", _atio_get_train)
    for kind in ("regression", "tune"):
        name = f"get_config_{kind}"
        _patch(mmsa_config, name, functools.partial(_config_loader, kind=kind))
        for namespace in (run, MMSA):  # both imported the function by name
            setattr(namespace, name, getattr(mmsa_config, name))
    _patch(data_loader, "MMDataLoader", _data_loader)
    run.MMDataLoader = data_loader.MMDataLoader
    _patch(run, "_run", _run_hook)
    _patch(data_loader.MMDataset, "generate_m", _generate_m)
    _patch(run, "setup_seed", _setup_seed)
    _patch(run, "MMSA_run", _mmsa_run)
    _patch(run, "MMSA_test", _mmsa_test)
    MMSA.MMSA_run, MMSA.MMSA_test = run.MMSA_run, run.MMSA_test
    run.torch = _TorchProxy()
    # trainer *modules* (their packages re-export classes of the same names)
    for module in ("singleTask.MMIM", "singleTask.MULT", "singleTask.MCTN", "missingTask.TFR_NET"):
        importlib.import_module(f"MMSA.trains.{module}").ReduceLROnPlateau = ReduceLROnPlateau
    _patch(importlib.import_module("MMSA.models.missingTask.TFR_NET.model"), "BertTextEncoder", _bert_text_encoder)
    _INSTALLED = True
