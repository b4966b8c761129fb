"""Plan a benchmark: check every input, then list the work units (one training run and its
pending evaluations each) before any data is touched or any model trained.

Data (:func:`pick_data_root`): ``data_root``, else ``$DAR_MMSA_DATA_ROOT``, else the config's
``dataset_root_dir`` when that folder exists, each holding MMSA's ``MOSI/Processed/*.pkl``; without
one, synthetic data is written to ``<out>/.cache/`` and every output says "synthetic".

MMSA's own models run as stock MMSA runs them unless a run's config (``--set``) asks for the
harness's corrections, ``pad_past_lengths`` (zeros at t >= length, LNLN's rule, which our models
always follow) and ``sample_weighted_loss`` (``Loss`` averaged over samples, not batches); both are
written into every MMSA model's run config, false by default, so they are part of its hash.
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
from .presets import QUICK_MODELS, QUICK_OVERRIDES, QUICK_SCALE, QUICK_SEEDS, pick_preset  # noqa: F401 (re-exported)
from .store import ResultStore

DEFAULT_MODELS = ("dar", "misa", "self_mm")
# the harness's corrections of MMSA's behaviour, per run, off by default (stock MMSA)
MMSA_CORRECTIONS = {"pad_past_lengths": False, "sample_weighted_loss": False}

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
    data_source: str = ""  # where data_root came from (pick_data_root), for the summary
    pretrained: Optional[str] = None
    synthetic: bool = False
    experiment: object = None  # experiments.Experiment; None: Table 1
    precision: str = "fp32"  # our models' autocast precision (training/precision.py)
    eval_batch_size: Optional[int] = None  # None: the training batch size
    loader_workers: int = 0
    deterministic: bool = False  # torch's deterministic algorithms, no TF32 (training/determinism.py)
    dataset_pretrained: dict = field(default_factory=dict)  # quick runs: the tiny Chinese BERT for SIMS
    checkpoints: str = "keep"  # "drop": delete a run's checkpoint once all its conditions are stored
    no_retrain: bool = False  # a damaged or missing checkpoint is an error instead of a retraining


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


def default_name(quick: bool, synthetic: bool, smoke: bool = False) -> str:
    preset = pick_preset(quick, smoke)
    if preset is not None:
        return f"synthetic-{preset.name}" if synthetic else preset.name
    return "synthetic" if synthetic else "default"


def _synthetic_root(cache: Path, scale: float) -> Path:
    return cache / f"synthetic-scale{scale:g}"


def write_synthetic_data(root: Path, datasets: Sequence[str], scale: float) -> None:
    """Make sure ``root`` holds synthetic ``datasets`` at ``scale`` (written once, then reused)."""
    from ..data.synthetic import ALIGNMENTS, feature_path, read_marker, write_synthetic

    marker = read_marker(root) or {}
    done = marker.get("datasets", {}) if isinstance(marker.get("datasets"), dict) else {}
    missing = [d for d in datasets
               if (done.get(d) or {}).get("scale") != scale
               or not all(feature_path(root, d, a).is_file() for a in ALIGNMENTS[d])]
    if missing:
        write_synthetic(root, datasets=tuple(missing), scale=scale, seed=0)


def config_data_root(config_file) -> Optional[Path]:
    """``datasetCommonParams.dataset_root_dir`` of the config in use (ours when None), if that folder exists."""
    import json

    from ..config import default_config_file

    try:
        with open(config_file or default_config_file()) as f:
            root = json.load(f).get("datasetCommonParams", {}).get("dataset_root_dir") or ""
    except (OSError, ValueError, AttributeError):
        return None
    return Path(root).expanduser() if root and Path(root).expanduser().is_dir() else None


def pick_data_root(data_root, config_file) -> Tuple[Optional[Path], str]:
    """(data root or None for synthetic data, where it came from): ``data_root``, ``$DAR_MMSA_DATA_ROOT``,
    the config's existing ``dataset_root_dir``, in that order."""
    if data_root:
        return Path(data_root).expanduser(), "--data-root"
    if os.environ.get(ENV_DATA_ROOT):
        return Path(os.environ[ENV_DATA_ROOT]).expanduser(), f"${ENV_DATA_ROOT}"
    from_config = config_data_root(config_file)
    if from_config is not None:
        return from_config, f"dataset_root_dir of {config_file or 'the default config'}"
    return None, "synthetic (no --data-root, no $DAR_MMSA_DATA_ROOT, no existing dataset_root_dir in the config)"


def prepare_inputs(settings: Settings, *, data_root, pretrained, quick: bool, smoke: bool = False) -> Optional[float]:
    """Data root and BERT: the given ones, or (paths for) synthetic data and a tiny BERT in the cache
    (at the scale of ``--quick`` / ``--smoke``, else full size; the tiny BERT only with one of them).

    Returns the scale of the synthetic data still to be written (after the cheap checks), or None.
    """
    cache = settings.store.root.parent / ".cache"
    root, settings.data_source = pick_data_root(data_root, settings.config_file)
    scale, preset = None, pick_preset(quick, smoke)
    if root is None:
        scale = preset.scale if preset is not None else 1.0
        root = _synthetic_root(cache, scale)
    root = Path(root).expanduser()
    if scale is None and not root.is_dir():
        raise ConfigError(f"data root {root} is not a directory: pass --data-root pointing at the folder "
                          f"holding MOSI/ and MOSEI/")
    settings.data_root = root
    settings.synthetic = scale is not None or is_synthetic(root)
    if pretrained is None and preset is not None:
        from ..text_encoder import write_tiny_bert

        from ..data.synthetic import LANGUAGES

        with contextlib.redirect_stderr(io.StringIO()):  # transformers' shard-writing progress bar
            pretrained = write_tiny_bert(cache / "tiny-bert", num_layers=1)
            if any(LANGUAGES.get(d) == "cn" for d in settings.datasets):
                chinese = str(write_tiny_bert(cache / "tiny-bert-chinese", num_layers=1, language="cn"))
                settings.dataset_pretrained = {d: chinese for d in settings.datasets if LANGUAGES.get(d) == "cn"}
    settings.pretrained = None if pretrained is None else str(pretrained)
    return scale


def is_synthetic(root) -> bool:
    from ..data.synthetic import is_synthetic_root

    return is_synthetic_root(root)


def check_speed(precision, eval_batch_size, loader_workers, device: torch.device, models, say, *,
                on_device: bool = True):
    """(precision, eval batch size, loader workers), checked; one ConfigError line when unusable
    (``on_device`` False: the runs train elsewhere, their GPU is not asked from here)."""
    from ..registry import our_models
    from ..training.precision import check_precision

    precision = check_precision(precision, device, on_device=on_device)
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
                             pretrained=settings.dataset_pretrained.get(dataset, settings.pretrained),
                             device=settings.device, seed=seed,
                             save_path=save_path, overrides=settings.overrides if overrides is None else overrides)
    if settings.precision != "fp32" and model in our_models():  # absent for fp32: stored runs keep their hash
        args["precision"] = settings.precision
    if model not in our_models():
        for key, default in MMSA_CORRECTIONS.items():
            args[key] = bool(args.get(key, default))
    args.update(modality_file_fingerprints(args))
    return args


def modality_file_fingerprints(args) -> dict:
    """``<option>_fingerprint`` of each ``custom_feature`` / ``feature_T/A/V`` file a run reads: their
    paths stay out of the run hash (like ``featurePath``), their contents go in."""
    from ..data.features import fingerprint

    out = {}
    for key in ("custom_feature", "feature_T", "feature_A", "feature_V"):
        if args.get(key):
            path = Path(str(args[key])).expanduser()
            if not path.is_file():
                raise ConfigError(f"{key} file {path} not found: pass an existing feature pickle or leave {key} empty")
            out[f"{key}_fingerprint"] = fingerprint(path)
    return out


def data_description(args, dataset: str, checked: Dict[str, dict], *, keep: bool = False) -> dict:
    """Validate the feature pickle a run reads (once per file); returns path, fingerprint, synthetic.

    With ``keep``, the validated data stay in memory for the next run to load (``feature_cache.keep``).
    """
    from ..data import feature_cache
    from ..data.features import fingerprint, load_features

    from ..data.modality_files import read_path

    path = Path(read_path(args))
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
