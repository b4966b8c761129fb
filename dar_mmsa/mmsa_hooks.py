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
* a relative ``featurePath`` is placed under ``DAR_MMSA_DATA_ROOT`` and ``pretrained`` is resolved
  to a local BERT (``DAR_MMSA_PRETRAINED`` first, unless ``MMSA_run(config=...)`` names
  ``pretrained``) when a run starts (``MMSA.run._run``), i.e. after MMSA has applied the ``config=``
  overrides; feature pickles are validated and ``train_samples`` is set from the
  data (Self-MM and TETFN index per-sample state by it); loaded audio/vision are zero at
  ``t >= length`` and lengths clipped to T (LNLN's padding rule, ``dar_mmsa.data.padding``), also in
  TFR-Net's ``generate_m``;
* MMSA's trainers report ``Loss`` as a mean of batch means: it is re-averaged over samples;
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
# keys the current ``MMSA_run(config=...)`` overrides: an explicit ``pretrained`` there beats the env var
_CONFIG_KEYS = contextvars.ContextVar("dar_mmsa_config_keys", default=frozenset())


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
        # paths are resolved when the run starts (``_run_hook``): MMSA applies ``config=`` after this
        return original(model_name, dataset_name, config_file)

    return get_config_regression


def _run_hook(original):
    """``MMSA.run._run(args, ...)``, entered with the final arguments (file + ``config=`` overrides)."""
    @functools.wraps(original)
    def _run(args, *rest, **kwargs):
        resolve_run_paths(args, pretrained_from_env="pretrained" not in _CONFIG_KEYS.get())
        return original(args, *rest, **kwargs)

    return _run


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
        apply_padding(loaders)
        del data  # what MMSA does not read (GloVe text with BERT, class labels) is freed here
        args["train_samples"] = len(loaders["train"].dataset)
        return loaders

    return MMDataLoader


def apply_padding(loaders) -> None:
    """Positions t >= length are zeros in every split MMSA loaded, lengths clipped to T (LNLN's rule)."""
    from .data.padding import apply_padding_to_dataset

    for loader in loaders.values():
        apply_padding_to_dataset(loader.dataset)


def _generate_m(original):
    """TFR-Net's masks (``MMDataset.generate_m``) from lengths clipped to T: a length above T would
    make MMSA build a ragged mask and fail (such files are accepted, with a warning)."""
    @functools.wraps(original)
    def generate_m(self, modality, input_mask, input_len, missing_rate, missing_seed, mode="text"):
        if mode in ("audio", "vision") and input_len is not None:
            input_len = np.clip(np.asarray(input_len).astype(np.int64), 0, modality.shape[1])
        return original(self, modality, input_mask, input_len, missing_rate, missing_seed, mode)

    return generate_m


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


class _LossRecorder:
    """Stands in for a trainer's loss function during ``do_test``: records (value, batch size) per call."""

    def __init__(self, function):
        self.function, self.calls = function, []

    def __call__(self, prediction, *args, **kwargs):
        loss = self.function(prediction, *args, **kwargs)
        self.calls.append((float(loss.detach()), len(prediction)))
        return loss


def _weighted_loss_test(trainer, do_test, model, loader, mode, *args, **kwargs):
    """``do_test`` with its ``Loss`` re-averaged over samples instead of over batches.

    MMSA's trainers report ``sum(batch losses) / len(loader)``, which moves with the batch size when
    the last batch is smaller. The loss function each calls once per batch (``weighted_loss`` for
    Self-MM, ``criterion`` for the others) is recorded; when it ran exactly once per batch the
    sample-weighted mean replaces ``Loss`` (else MMSA's value stays).
    """
    name = "weighted_loss" if hasattr(trainer, "weighted_loss") else "criterion" if hasattr(trainer, "criterion") \
        else None
    if name is None:
        return do_test(model, loader, mode, *args, **kwargs)
    own = name in vars(trainer)
    original = getattr(trainer, name)
    recorder = _LossRecorder(original)
    setattr(trainer, name, recorder)
    try:
        results = do_test(model, loader, mode, *args, **kwargs)
    finally:
        if own:
            setattr(trainer, name, original)
        else:
            delattr(trainer, name)
    calls = recorder.calls
    if isinstance(results, dict) and "Loss" in results and calls and len(calls) == len(loader):
        results["Loss"] = round(sum(v * n for v, n in calls) / sum(n for _, n in calls), 4)
    return results


def mmsa_trainer(trainer, max_epochs: Optional[int] = None):
    """MMSA's own trainer, with three fixes.

    * ``do_test(model, ...)`` evaluates ``model``: MMIM's evaluates ``self.model`` (whatever its
      ``do_train`` last saw), so a freshly loaded checkpoint would be ignored.
    * ``do_test``'s ``Loss`` is the sample-weighted mean (see :func:`_weighted_loss_test`), so it does
      not depend on the evaluation batch size, like our trainers' ``Loss``.
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
        return _weighted_loss_test(trainer, do_test, model, loader, mode, *args, **kwargs)

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
    _patch(run, "_run", _run_hook)
    from MMSA.data_loader import MMDataset

    _patch(MMDataset, "generate_m", _generate_m)
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
