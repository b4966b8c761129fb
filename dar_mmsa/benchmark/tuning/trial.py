"""One trial: train a model with sampled hyperparameters and score it on validation only.

A trial is the grid's training unit (MMSA's config, ``AMIO``, ``ATIO``, the model's own
``do_train`` with its own checkpoint selection) with three differences:

* only the train and valid splits become datasets: the test split is dropped from the loaded
  features before MMSA's ``MMDataset`` sees them, so no loader, no evaluation and no selection in
  a search can read it (a model whose config selects on the test split is refused);
* after each of the trainer's own validations (one per epoch), the objective -- ``metric`` on the
  validation split damaged at each tuning rate with the protocol's masks, averaged over rates --
  goes to ``on_epoch``, which answers whether to stop (pruning); the torch RNG is restored around
  this extra evaluation, so the training itself is the grid's;
* the trial's value is the objective of the checkpoint the trainer selected, averaged over seeds.

The protocol's masks: our trainers corrupt validation batches themselves with the same counter
hash as the test corruption (their ``valid_missing_rate`` is set to each rate in turn, so their
validation loss keeps its meaning, e.g. DAR's total loss); MMSA's trainers get the validation
arrays damaged by ``benchmark.evaluate.damaged_dataset`` exactly as a test split would be.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional

import torch
from torch.utils.data import DataLoader

from ... import runner
from ...errors import ConfigError
from ..evaluate import damaged_dataset
from ..grid import Condition
from .search import SearchDefinition
from .space import decode_params

TRAIN_SPLITS = ("train", "valid")


class StopTrial(Exception):
    """Raised from inside ``do_train`` when the search prunes the trial."""


@dataclass
class TrialOutcome:
    params: dict
    state: str  # "complete" or "pruned"
    values: Dict[str, float]  # per tuning rate ("0.3": value), mean over the seeds scored
    objective: float
    epochs: int  # epochs trained (all seeds)
    intermediate: List[float] = field(default_factory=list)  # per epoch of the first seed
    wall_time_s: float = 0.0


def epoch_cap_overrides(cap: int) -> dict:
    """The config keys that bound training to ``cap`` epochs in every model (``epoch_cap``: ALMT)."""
    return {"max_epochs": cap, "epoch_cap": cap}


def trial_args(settings, definition: SearchDefinition, params: Mapping, seed: int, save_path) -> dict:
    from ..plan import build_args

    overrides = dict(settings.overrides, **decode_params(params), **epoch_cap_overrides(definition.epoch_cap))
    args = build_args(settings, definition.model, definition.dataset, seed, save_path=save_path, overrides=overrides)
    if args.get("checkpoint_selection") == "test_metric":
        raise ConfigError(f"model '{definition.model}' is configured to select its checkpoint on the test split "
                          f"(checkpoint_selection: test_metric): tuning scores validation only; use valid_loss")
    return args


def train_valid_loaders(args, num_workers: int = 0) -> Dict[str, DataLoader]:
    """MMSA's train and valid loaders (as ``MMDataLoader`` builds them, padding rule included); the
    test split is not handed to MMSA at all."""
    from MMSA.data_loader import MMDataset

    from ...data.feature_cache import load_for_run
    from ...mmsa_hooks import apply_padding, serving_features

    path = args["featurePath"]
    data = load_for_run(path, args["dataset_name"], aligned=bool(args.get("need_data_aligned")),
                        use_bert=bool(args.get("use_bert")))
    data = {split: data[split] for split in TRAIN_SPLITS}
    with serving_features(path, data):
        datasets = {split: MMDataset(args, mode=split) for split in TRAIN_SPLITS}
    if "seq_lens" in args:
        args["seq_lens"] = datasets["train"].get_seq_len()
    loaders = {split: DataLoader(d, batch_size=args["batch_size"], num_workers=num_workers, shuffle=True)
               for split, d in datasets.items()}
    apply_padding(loaders)
    args["train_samples"] = len(datasets["train"])
    return loaders


def _is_ours(trainer) -> bool:
    from ...training.base import Trainer

    return isinstance(trainer, Trainer)


def validation_values(model, trainer, do_test, dataset, definition: SearchDefinition, seed: int, *,
                      batch_size: int) -> Dict[str, float]:
    """``definition.metric`` on the validation ``dataset`` at each tuning rate (key: the rate as text)."""
    values = {}
    ours = _is_ours(trainer)
    device = trainer.args.get("device") or "cpu"
    devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    saved_terms = getattr(trainer, "_terms", None)
    saved_rate = trainer.args.get("valid_missing_rate")
    try:
        with torch.random.fork_rng(devices=devices):
            if ours:
                trainer._terms = None  # these evaluations are not the epoch's logged validation
            for rate in definition.rates:
                if ours:  # the trainer corrupts validation batches itself, with the protocol's masks
                    trainer.args["valid_missing_rate"] = rate
                    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
                    results = do_test(model, loader, mode="VAL")
                else:
                    damaged = damaged_dataset(dataset, Condition.intra(rate), seed,
                                              data_missing=bool(trainer.args.get("data_missing")))
                    results = do_test(model, DataLoader(damaged, batch_size=batch_size, shuffle=False), mode="TEST")
                values[f"{rate:g}"] = float(results[definition.metric])
    finally:
        if ours:
            trainer._terms = saved_terms
            trainer.args["valid_missing_rate"] = saved_rate
    return values


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else math.nan


class EpochObjective:
    """Stands in for ``trainer.do_test``: after each of the trainer's own validations, the
    objective at the tuning rates goes to ``on_epoch(epoch, objective, values)``; a True answer
    stops training (:class:`StopTrial`)."""

    def __init__(self, trainer, valid_loader, definition: SearchDefinition, seed: int,
                 on_epoch: Optional[Callable[[int, float, dict], bool]]):
        self.trainer, self.valid_loader, self.definition, self.seed = trainer, valid_loader, definition, seed
        self.inner, self.on_epoch = trainer.do_test, on_epoch
        self.epochs, self.intermediate, self.last_values = 0, [], {}
        trainer.do_test = self

    def __call__(self, model, loader, mode="VAL", *args, **kwargs):
        results = self.inner(model, loader, mode, *args, **kwargs)
        if mode == "VAL" and loader is self.valid_loader:
            self.epochs += 1
            if self.on_epoch is not None:
                values = self.last_values = self.score(model)
                objective = mean(values.values())
                self.intermediate.append(objective)
                if self.on_epoch(self.epochs, objective, values):
                    raise StopTrial()
        return results

    def score(self, model) -> Dict[str, float]:
        return validation_values(model, self.trainer, self.inner, self.valid_loader.dataset, self.definition, self.seed,
                                 batch_size=int(self.trainer.args.get("batch_size") or 32))


def run_trial(settings, definition: SearchDefinition, params: Mapping, checkpoint: Path,
              on_epoch: Callable[[int, float, dict], bool]) -> TrialOutcome:
    """Train and score one trial (see the module docstring); ``on_epoch`` sees the first seed's epochs."""
    import MMSA.run as mmsa_run

    start = time.perf_counter()
    per_seed, epochs, intermediate, last_values, state = [], 0, [], {}, "complete"
    checkpoint = Path(checkpoint)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    try:
        for i, seed in enumerate(definition.seeds):
            args = trial_args(settings, definition, params, seed, checkpoint)
            loaders = train_valid_loaders(args, settings.loader_workers)
            mmsa_run.setup_seed(seed)
            model = runner.build_model(args)
            trainer = runner.build_trainer(args)
            watch = EpochObjective(trainer, loaders["valid"], definition, seed, on_epoch if i == 0 else None)
            try:
                trainer.do_train(model, loaders)
            except StopTrial:
                state = "pruned"
            finally:
                epochs += watch.epochs
                intermediate = intermediate or watch.intermediate
            if state == "pruned":  # scored by its last epoch
                last_values = watch.last_values
                break
            runner.load_checkpoint(model, args)
            per_seed.append(watch.score(model))
    finally:
        checkpoint.unlink(missing_ok=True)
    if state == "pruned":
        values, objective = last_values, intermediate[-1]
    else:
        values = {k: mean(v[k] for v in per_seed) for k in per_seed[0]}
        objective = mean(values.values())
    return TrialOutcome(decode_params(params), state, values, objective, epochs, intermediate,
                        round(time.perf_counter() - start, 3))
