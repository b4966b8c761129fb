"""Plan a benchmark: check every input, then list the work units (one training run and its
pending evaluations each) before any data is touched or any model trained.

Data: ``data_root`` (or ``$DAR_MMSA_DATA_ROOT``) holding MMSA's ``MOSI/Processed/*.pkl``; without
one, synthetic data is written to ``<out>/.cache/`` and every output says "synthetic".
"""
from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from .. import runner
from ..errors import ConfigError
from ..registry import ENV_DATA_ROOT, check_model, list_models
from .grid import DEFAULT_SEEDS, Condition, TrainingRun, training_config_hash
from .store import ResultStore

QUICK_MODELS = ("dar", "misa")
QUICK_SEEDS = DEFAULT_SEEDS  # cheap enough: the quick Table 1 averages 3 seeds like the paper
QUICK_SCALE = 0.1  # of the real split sizes: MOSI 128 / 23 / 69 samples
QUICK_OVERRIDES = {"max_epochs": 2, "epoch_cap": 2, "batch_size": 16}  # epoch_cap: ALMT (max_epochs shapes its schedule)
DEFAULT_MODELS = ("dar", "misa", "self_mm")

@dataclass
class Settings:
    models: Tuple[str, ...]
    datasets: Tuple[str, ...]
    seeds: Tuple[int, ...]
    conditions: Tuple[Condition, ...]
    device: torch.device
    config_file: Optional[Path]
    overrides: dict
    store: ResultStore
    data_root: Optional[Path] = None
    pretrained: Optional[str] = None
    synthetic: bool = False
    experiment: object = None  # experiments.Experiment; None: Table 1
    precision: str = "fp32"  # our models' autocast precision (training/precision.py)
    eval_batch_size: Optional[int] = None  # None: the training batch size
    loader_workers: int = 0


def check_seeds(seeds: Iterable) -> Tuple[int, ...]:
    try:
        out = tuple(int(s) for s in seeds)
    except (TypeError, ValueError):
        raise ConfigError(f"seeds must be integers, got {list(seeds)}: e.g. --seeds 1111 1112 1113") from None
    if not out:
        raise ConfigError("no seeds given: e.g. --seeds 1111 1112 1113")
    return tuple(dict.fromkeys(out))


def check_models(models: Iterable[str]) -> Tuple[str, ...]:
    out = tuple(dict.fromkeys(check_model(m) for m in models))
    if not out:
        raise ConfigError(f"no models given: choose from {', '.join(list_models())}")
    return out


def default_name(quick: bool, synthetic: bool) -> str:
    if quick:
        return "synthetic-quick" if synthetic else "quick"
    return "synthetic" if synthetic else "default"


def _synthetic_root(cache: Path, scale: float) -> Path:
    return cache / f"synthetic-scale{scale:g}"


def write_synthetic_data(root: Path, datasets: Sequence[str], scale: float) -> None:
    """Make sure ``root`` holds synthetic ``datasets`` at ``scale`` (written once, then reused)."""
    from ..data.synthetic import feature_path, read_marker, write_synthetic

    marker = read_marker(root) or {}
    done = marker.get("datasets", {}) if isinstance(marker.get("datasets"), dict) else {}
    missing = [d for d in datasets
               if (done.get(d) or {}).get("scale") != scale
               or not all(feature_path(root, d, a).is_file() for a in (False, True))]
    if missing:
        write_synthetic(root, datasets=tuple(missing), scale=scale, seed=0)


def prepare_inputs(settings: Settings, *, data_root, pretrained, quick: bool) -> Optional[float]:
    """Data root and BERT: the given ones, or (paths for) synthetic data and a tiny BERT in the cache.

    Returns the scale of the synthetic data still to be written (after the cheap checks), or None.
    """
    cache = settings.store.root.parent / ".cache"
    root = data_root or os.environ.get(ENV_DATA_ROOT) or None
    scale = None
    if root is None:
        scale = QUICK_SCALE if quick else 1.0
        root = _synthetic_root(cache, scale)
    root = Path(root).expanduser()
    if scale is None and not root.is_dir():
        raise ConfigError(f"data root {root} is not a directory: pass --data-root pointing at the folder "
                          f"holding MOSI/ and MOSEI/")
    settings.data_root = root
    settings.synthetic = scale is not None or is_synthetic(root)
    if pretrained is None and quick:
        from ..text_encoder import write_tiny_bert

        with contextlib.redirect_stderr(io.StringIO()):  # transformers' shard-writing progress bar
            pretrained = write_tiny_bert(cache / "tiny-bert", num_layers=1)
    settings.pretrained = None if pretrained is None else str(pretrained)
    return scale


def is_synthetic(root) -> bool:
    from ..data.synthetic import is_synthetic_root

    return is_synthetic_root(root)


def check_speed(precision, eval_batch_size, loader_workers, device: torch.device, models, say):
    """(precision, eval batch size, loader workers), checked; one ConfigError line when unusable."""
    from ..registry import our_models
    from ..training.precision import check_precision

    precision = check_precision(precision, device)
    if eval_batch_size is not None and (not isinstance(eval_batch_size, int) or eval_batch_size < 1):
        raise ConfigError(f"eval batch size must be a positive integer, got {eval_batch_size}: e.g. --eval-batch-size 256")
    if loader_workers is None:
        loader_workers = 2 if device.type == "cuda" else 0
    if not isinstance(loader_workers, int) or loader_workers < 0:
        raise ConfigError(f"loader workers must be an integer >= 0, got {loader_workers}: e.g. --loader-workers 2")
    theirs = [m for m in models if m not in our_models()]
    if precision != "fp32" and theirs:
        say(f"note: --precision {precision} applies to dar_mmsa's models; MMSA's ({', '.join(theirs)}) train in fp32")
    return precision, eval_batch_size, loader_workers


def build_args(settings: Settings, model: str, dataset: str, seed: int, save_path=None, overrides=None):
    from ..registry import our_models

    args = runner.build_args(model, dataset, config_file=settings.config_file, data_root=settings.data_root,
                             pretrained=settings.pretrained, device=settings.device, seed=seed,
                             save_path=save_path, overrides=settings.overrides if overrides is None else overrides)
    if settings.precision != "fp32" and model in our_models():  # absent for fp32: stored runs keep their hash
        args["precision"] = settings.precision
    return args


def data_description(args, dataset: str, checked: Dict[str, dict], *, keep: bool = False) -> dict:
    """Validate the feature pickle a run reads (once per file); returns path, fingerprint, synthetic.

    With ``keep``, the validated data stay in memory for the next run to load (``feature_cache.keep``).
    """
    from ..data import feature_cache
    from ..data.features import fingerprint, load_features

    path = Path(args["featurePath"])
    if str(path) not in checked:
        aligned, use_bert = bool(args.get("need_data_aligned")), bool(args.get("use_bert"))
        data = load_features(path, dataset, aligned=aligned, use_bert=use_bert)
        if keep:
            feature_cache.keep(path, dataset, aligned, use_bert, data)
        del data
        checked[str(path)] = {"feature_path": str(path), "fingerprint": fingerprint(path),
                              "synthetic": is_synthetic(path.parents[2])}
    return checked[str(path)]


@dataclass
class WorkUnit:
    """One training run, its merged MMSA arguments and the description of its data."""

    run: TrainingRun
    args: dict
    data: dict = field(default_factory=dict)
    variant: str = ""  # the experiment variant's key ("" for Table 1)


def plan(settings: Settings) -> List[WorkUnit]:
    """Every run's arguments (config entry, BERT and device checked) before any data is touched."""
    from .experiments import check_applicable, variant_overrides, variants_of

    planned = []
    for dataset in settings.datasets:
        for model in settings.models:
            if settings.experiment is not None and not settings.experiment.is_table1:
                check_applicable(settings.experiment, model, build_args(settings, model, dataset, settings.seeds[0]))
            for variant in variants_of(settings.experiment):
                for seed in settings.seeds:
                    args = build_args(settings, model, dataset, seed,
                                      overrides=variant_overrides(settings.overrides, variant))
                    if not args.get("use_bert"):
                        raise ConfigError(f"model '{model}' reads GloVe text features: the protocol corrupts BERT "
                                          f"token ids ([UNK]), so use a BERT model (e.g. misa, self_mm, mmim, "
                                          f"tfr_net)")
                    planned.append(WorkUnit(TrainingRun(model, dataset, seed, training_config_hash(args),
                                                        settings.conditions), args,
                                            variant=variant.key if variant is not None else ""))
    return planned


def check_data(planned: Sequence[WorkUnit], *, keep_first: bool = True) -> None:
    """Validate and fingerprint every feature pickle the runs read (each unpickled once, one at a time).

    With ``keep_first`` (the serial executor), the first run's file is validated last and kept in
    memory for that run, which then does not unpickle it again; an executor that trains elsewhere
    passes False.
    """
    checked: Dict[str, dict] = {}
    first = str(planned[0].args["featurePath"]) if planned else None
    for p in sorted(planned, key=lambda p: str(p.args["featurePath"]) == first):  # stable: the first's file last
        p.data = data_description(p.args, p.run.dataset, checked, keep=keep_first and p is planned[0])


def check_store(settings: Settings, planned: Sequence[WorkUnit], eval_only: bool) -> None:
    """Stored trainings must come from the same data; ``eval_only`` needs every checkpoint."""
    store = settings.store
    for p in planned:
        record = store.training(p.run.run_id)
        if record is not None and record["data"]["fingerprint"] != p.data["fingerprint"]:
            raise ConfigError(f"{store.root} holds {p.run.title} trained on other data "
                              f"({record['data']['feature_path']}, fingerprint {record['data']['fingerprint'][:19]}): "
                              f"pass another --name for this data")
        if eval_only and record is None:
            raise ConfigError(f"--eval-only: no saved checkpoint for {p.run.title} (config "
                              f"{p.run.config_hash[:12]}) in {store.root}: run without --eval-only to train it")
