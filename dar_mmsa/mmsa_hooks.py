"""The only module that touches MMSA's internals.

:func:`register` (run by ``import dar_mmsa``; idempotent) teaches MMSA 2.2.1 to build our
models and trainers by name -- ``MMSA.models.AMIO``, ``MMSA.trains.ATIO`` and ``MMSA.MMSA_run`` --
and works around MMSA's rough edges on CPU and current torch/transformers/numpy:

* ``MMSA_run`` calls ``torch.cuda.set_device`` on the CPU device: the ``torch`` that
  ``MMSA.run`` sees ignores that call for non-CUDA devices;
* MMIM, MulT, MCTN and TFR-Net pass ``verbose=`` to ``ReduceLROnPlateau``, which torch 2.13 rejects;
* TFR-Net's text encoder ignores ``pretrained`` and asks the hub for ``bert-base-uncased``;
* a ``pretrained`` that is not local, or a directory without ``vocab.txt`` (transformers 5 then
  returns a 5-token tokenizer silently), fails at once with one line;
* numpy 2 scalars reach MMSA's result CSV as ``np.float64(...)``: ``MMSA_run`` prints with
  numpy's 1.25 scalar repr;
* every ``MMSA_run`` in one process added logging handlers again: they are replaced instead;
* empty ``dataset_root_dir``/``pretrained`` are filled from ``DAR_MMSA_DATA_ROOT`` /
  ``DAR_MMSA_PRETRAINED``; feature pickles are validated and ``train_samples`` is set from the
  data (Self-MM and TETFN index per-sample state by it);
* ``MMDataLoader`` unpickled its feature file once per split and copied every feature array
  (``astype``): the file is loaded once (``dar_mmsa.data.feature_cache``), validated, and that
  object is what MMSA's datasets read, sharing its arrays;
* ``max_epochs`` in a config caps MMSA's own trainers (which otherwise only stop early).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import logging
import os
import pickle
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from .registry import _MODELS, ENV_DATA_ROOT, ENV_PRETRAINED, RunState, check_dataset, check_model

_PRETRAINED = contextvars.ContextVar("dar_mmsa_pretrained", default=None)


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


def _config_loader(original):
    @functools.wraps(original)
    def get_config_regression(model_name, dataset_name, config_file=""):
        check_model(model_name)
        check_dataset(dataset_name)
        args = original(model_name, dataset_name, config_file)
        resolve_run_paths(args)
        return args

    return get_config_regression


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
        return mmsa_trainer(original(self, args), args.get("max_epochs"))

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


def _data_loader(original):
    @functools.wraps(original)
    def MMDataLoader(args, num_workers=4):
        from .data.feature_cache import load_for_run

        path = args["featurePath"]
        data = load_for_run(path, args["dataset_name"], aligned=bool(args.get("need_data_aligned")),
                            use_bert=bool(args.get("use_bert")))
        with serving_features(path, data):
            loaders = original(args, num_workers)
        del data  # what MMSA does not read (GloVe text with BERT, class labels) is freed here
        args["train_samples"] = len(loaders["train"].dataset)
        return loaders

    return MMDataLoader


class MaxEpochsReached(Exception):
    """Ends an MMSA trainer's ``while True`` loop once ``max_epochs`` validations have run."""


class _CappedLoader:
    def __init__(self, loader, done: Callable[[], bool]):
        self.loader, self.done = loader, done

    def __iter__(self):
        if self.done():
            raise MaxEpochsReached()
        return iter(self.loader)

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):
        return getattr(self.loader, name)


def mmsa_trainer(trainer, max_epochs: Optional[int] = None):
    """MMSA's own trainer, with two fixes.

    * ``do_test(model, ...)`` evaluates ``model``: MMIM's evaluates ``self.model`` (whatever its
      ``do_train`` last saw), so a freshly loaded checkpoint would be ignored.
    * With ``max_epochs``, training stops after that many validated epochs (MMSA's trainers only stop
      early). Epochs are counted by validation calls, not by passes over the train loader, because
      Self-MM also loops over it once to initialise its labels. The best checkpoint so far stays where
      the trainer saved it.
    """
    validations = [0]
    do_train, do_test = trainer.do_train, trainer.do_test

    def evaluated_test(model, loader, mode="VAL", *args, **kwargs):
        validations[0] += mode == "VAL"
        trainer.model = model  # harmless for trainers that never read it
        return do_test(model, loader, mode, *args, **kwargs)

    def capped_train(model, dataloader, *args, **kwargs):
        loaders = dict(dataloader)
        loaders["train"] = _CappedLoader(dataloader["train"], lambda: validations[0] >= max_epochs)
        try:
            return do_train(model, loaders, *args, **kwargs)
        except MaxEpochsReached:
            return None

    trainer.do_test = evaluated_test
    if max_epochs:
        trainer.do_train = capped_train
    return trainer


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


def _set_logger(original):
    @functools.wraps(original)
    def set_logger(log_dir, model_name, dataset_name, verbose_level):
        mmsa_logger = logging.getLogger("MMSA")
        for handler in list(mmsa_logger.handlers):
            mmsa_logger.removeHandler(handler)
            handler.close()
        return original(log_dir, model_name, dataset_name, verbose_level)

    return set_logger


def _setup_seed(original):
    @functools.wraps(original)
    def setup_seed(seed):
        RunState.seed = int(seed)
        return original(seed)

    return setup_seed


def _mmsa_run(original):
    @functools.wraps(original)
    def MMSA_run(*args, **kwargs):
        with np.printoptions(legacy="1.25"):  # plain numbers, not np.float64(...), in MMSA's CSV
            return original(*args, **kwargs)

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
    """Install our models and compatibility fixes into the imported MMSA (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    import MMSA
    import MMSA.run as run
    from MMSA.models import AMIO
    from MMSA.trains import ATIO

    from . import models  # noqa: F401  -- registers our models

    _patch(AMIO, "__init__", _amio_init)
    _patch(ATIO, "getTrain", _atio_get_train)
    _patch(run, "get_config_regression", _config_loader)
    _patch(run, "MMDataLoader", _data_loader)
    _patch(run, "_set_logger", _set_logger)
    _patch(run, "setup_seed", _setup_seed)
    _patch(run, "MMSA_run", _mmsa_run)
    MMSA.MMSA_run = run.MMSA_run
    run.torch = _TorchProxy()
    # trainer *modules* (their packages re-export classes of the same names)
    for module in ("singleTask.MMIM", "singleTask.MULT", "singleTask.MCTN", "missingTask.TFR_NET"):
        importlib.import_module(f"MMSA.trains.{module}").ReduceLROnPlateau = ReduceLROnPlateau
    _patch(importlib.import_module("MMSA.models.missingTask.TFR_NET.model"), "BertTextEncoder", _bert_text_encoder)
    _INSTALLED = True
