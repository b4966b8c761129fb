"""Train and test one (model, dataset, seed) through MMSA's own machinery: its config loader,
``MMDataLoader``, ``AMIO`` and ``ATIO`` (with our registry installed), like ``MMSA.run._run``.

The benchmark harness and the tests build on these functions; ``MMSA.MMSA_run`` works too. Unlike
``MMSA_run``, these apply the harness's corrections to MMSA's own models when the run's config asks
(``pad_past_lengths``, ``sample_weighted_loss``, ``max_epochs``; ``dar_mmsa.training.mmsa_trainer``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import torch

from .errors import ConfigError
from .mmsa_hooks import PAD_PAST_LENGTHS, SAMPLE_WEIGHTED_LOSS, harness_loaders, is_ours, resolve_run_paths
from .registry import check_dataset, check_model


def resolve_device(device: str = "auto") -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device '{device}': use auto, cpu or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' asked for but CUDA is not available: use --device cpu")
    return dev


def dataset_params(config_file, dataset: str, aligned: bool) -> dict:
    """``datasetCommonParams[dataset][aligned|unaligned]`` with ``featurePath`` under ``dataset_root_dir``."""
    with open(config_file) as f:
        common = json.load(f)["datasetCommonParams"]
    params = dict(common[dataset]["aligned" if aligned else "unaligned"])
    params["featurePath"] = os.path.join(common["dataset_root_dir"], params["featurePath"])
    return params


def build_args(model: str, dataset: str, *, config_file=None, data_root=None, pretrained=None,
               device="cpu", seed: int = 1111, save_path=None, overrides: Optional[dict] = None):
    """MMSA's merged config for one run, with data root, BERT path, device and seed filled in."""
    import MMSA.run as run

    from .config import default_config_file

    model, dataset = check_model(model), check_dataset(dataset)
    config_file = Path(config_file) if config_file else default_config_file()
    if not config_file.is_file():
        raise ConfigError(f"config file {config_file} not found: pass an existing --config or omit it")
    try:
        # MMSA's own loader (our entry added if the file lacks it); paths are resolved below, explicit arguments first
        args = run.get_config_regression(model, dataset, str(config_file))
    except KeyError as exc:
        raise ConfigError(f"config file {config_file} has no entry {exc} for {model}/{dataset}: "
                          f"regenerate it with python -m dar_mmsa.config --write") from None
    if overrides:
        args.update(overrides)
        if "need_data_aligned" in overrides:  # MMSA picks the pickle from this key when it loads the config
            args.update(dataset_params(config_file, dataset, bool(overrides["need_data_aligned"])))
            args.update(overrides)
    overrides = overrides or {}
    if data_root is not None and not os.path.isabs(str(overrides.get("featurePath", ""))):
        parts = Path(args["featurePath"]).parts[-3:]  # <DATASET>/Processed/<file>.pkl
        args["featurePath"] = str(Path(data_root, *parts))
    if pretrained is not None:
        args["pretrained"] = str(pretrained)
    # explicit first: the pretrained argument, then an overridden key, then $DAR_MMSA_PRETRAINED, then the file
    resolve_run_paths(args, pretrained_from_env=pretrained is None and "pretrained" not in overrides)
    args["device"] = resolve_device(device) if not isinstance(device, torch.device) else device
    args["seed"] = int(seed)
    args["cur_seed"] = int(seed)
    args["train_mode"] = "regression"
    for key in ("custom_feature", "feature_T", "feature_A", "feature_V"):
        args.setdefault(key, None if key == "custom_feature" else "")
    args["model_save_path"] = Path(save_path) if save_path else Path(f"{model}-{dataset}-{seed}.pth")
    return args


def load_data(args, num_workers: int = 0, pin_memory: bool = False):
    """MMSA's loaders (train/valid/test), after our validation of the feature pickle (zeros past the
    lengths for our models, and for MMSA's when ``pad_past_lengths``); ``pin_memory`` (GPU runs)
    rebuilds them with pinned batches, same datasets, batch size, workers and shuffling."""
    from torch.utils.data import DataLoader

    loaders = harness_loaders(args, num_workers, pad=is_ours(args) or bool(args.get(PAD_PAST_LENGTHS)))
    if pin_memory:
        loaders = {split: DataLoader(loader.dataset, batch_size=loader.batch_size, num_workers=num_workers,
                                     shuffle=True, pin_memory=True) for split, loader in loaders.items()}
    return loaders


def build_model(args):
    from MMSA.models import AMIO

    return AMIO(args).to(args["device"])


def build_trainer(args):
    """The model's trainer; MMSA's own with the corrections its config asks for (``max_epochs``,
    ``sample_weighted_loss``)."""
    from MMSA.trains import ATIO

    from .training.mmsa_trainer import mmsa_trainer

    trainer = ATIO().getTrain(args)
    if is_ours(args):
        return trainer
    return mmsa_trainer(trainer, args.get("max_epochs"), sample_weighted_loss=bool(args.get(SAMPLE_WEIGHTED_LOSS)))


def train(args, loaders):
    """Seed, build, train; returns (model with the best checkpoint loaded, trainer)."""
    import MMSA.run as run

    run.setup_seed(args["seed"])
    model = build_model(args)
    trainer = build_trainer(args)
    Path(args["model_save_path"]).parent.mkdir(parents=True, exist_ok=True)
    trainer.do_train(model, loaders)
    load_checkpoint(model, args)
    return model, trainer


def load_checkpoint(model, args):
    model.load_state_dict(torch.load(args["model_save_path"], map_location="cpu"))
    return model.to(args["device"])


def run_once(model: str, dataset: str, num_workers: int = 0, **kwargs) -> dict:
    """Train and test once, like one seed of ``MMSA_run``; returns MMSA's test metrics + Loss."""
    args = build_args(model, dataset, **kwargs)
    loaders = load_data(args, num_workers)
    net, trainer = train(args, loaders)
    return trainer.do_test(net, loaders["test"], mode="TEST")
