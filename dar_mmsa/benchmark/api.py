"""``dar_mmsa.benchmark.run``: the robustness benchmark of the DAR paper (Table 1, Figure 4), and
the inter-modal / per-modality protocols beyond it, for any registered model.

Flow: validate everything (models, datasets, rates, device, config, output folder, BERT, feature
pickles, stored data fingerprints, checkpoints for ``eval_only``) -> for each (dataset, model,
seed): train once through the model's own trainer (``dar_mmsa.runner``), move the checkpoint into
the store, evaluate it under every pending test condition (``evaluate``), store each evaluation
as soon as it exists (``store``) -> aggregate what this command asked for (``aggregate``) ->
CSVs, LaTeX tables and figures under ``<out>/<name>/`` and a summary on the terminal.

Data: ``data_root`` (or ``$DAR_MMSA_DATA_ROOT``) holding MMSA's ``MOSI/Processed/*.pkl``; without
one, synthetic data is written to ``<out>/.cache/`` and every output says "synthetic".
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence

from ..errors import ConfigError
from ..registry import DATASETS, ENV_DATA_ROOT, check_dataset
from .executors import BackendOptions, make_executor
from .experiments import get_experiment, select_variants
from .grid import DEFAULT_DROP_RATES, DEFAULT_RATES, DEFAULT_SEEDS, conditions_for, parse_rates_per_modality
from .plan import (DEFAULT_MODELS, check_speed, QUICK_MODELS, QUICK_OVERRIDES, QUICK_SEEDS, Settings, check_data, check_models,
                   check_seeds, check_store, default_name, is_synthetic, plan, prepare_inputs, write_synthetic_data)
from .analysis import check_analysis
from .reports import (BenchmarkResult, experiment_summary_text, rebuild_reports, summary_text,
                      write_experiment_reports, write_reports)
from .store import ResultStore, write_atomic


def run(models: Optional[Sequence[str]] = None, datasets: Sequence[str] = ("mosi",),
        seeds: Optional[Sequence[int]] = None, rates: Optional[Sequence[float]] = None, *, protocol: str = "intra",
        drop_rates: Optional[Sequence[float]] = None,
        rates_per_modality: Optional[Sequence] = None, data_root=None, pretrained=None, device: str = "auto",
        out="results", name: Optional[str] = None, quick: bool = False, eval_only: bool = False, config_file=None,
        overrides: Optional[Mapping] = None, with_reported: bool = False, progress: bool = True,
        say=None, masks: str = "ours", analysis: Optional[Mapping] = None, experiment: str = "table1",
        variants: Optional[Sequence[str]] = None,
        backend: str = "serial", jobs: Optional[int] = None, cpus_per_run: Optional[float] = None,
        gpus_per_run: Optional[float] = None, ray_address: Optional[str] = None,
        max_retries: Optional[int] = None, precision: str = "fp32", eval_batch_size: Optional[int] = None,
        loader_workers: Optional[int] = None) -> BenchmarkResult:
    """Run (or resume) the robustness benchmark and write its reports; see the module docstring.

    Args:
        models, datasets, seeds: the grid (defaults: ``dar misa self_mm`` -- ``dar misa`` with
            ``quick`` --, ``mosi``, seeds 1111 1112 1113).
        rates: test missing rates of the intra-modal protocol (default 0.0 .. 0.9).
        protocol: ``intra`` (Table 1), ``inter`` (modality subsets + random whole-modality drop
            at ``drop_rates``, default 0.1 .. 0.7) or ``all``.
        rates_per_modality: per-modality settings replacing ``rates``, as dicts
            ``{"text": .., "audio": .., "vision": ..}`` or tokens like ``["l=0.2", "a=0.5", "v=0.5"]``.
        data_root: MMSA dataset root; None -> ``$DAR_MMSA_DATA_ROOT`` or synthetic data.
        pretrained: local BERT directory (None -> config / ``$DAR_MMSA_PRETRAINED``; a tiny random
            BERT with ``quick``).
        out, name: outputs go to ``<out>/<name>/`` (default name from ``quick`` and the data).
        quick: small synthetic data, ``max_epochs`` 2, batch size 16 (for CI and the README).
        eval_only: evaluate saved checkpoints only (error if one is missing).
        config_file: MMSA-format config (default ``dar_mmsa.config.default_config_file()``).
        overrides: config keys to override for every run (part of the training config hash).
        with_reported: add the paper's reported rows to ``table1.tex``.
        say: where one-line messages go (default: stderr).
        masks: the intra-modal masks, ``ours`` (default) or ``lnln`` (LNLN's reference masks,
            ``dar_mmsa.data.lnln_masks``); stored in each evaluation's condition.
        backend: ``serial`` (one unit after another, here) or ``ray`` (Ray tasks; ``ray_address``
            joins a running cluster, else a local Ray starts); ``jobs`` caps the units in flight,
            ``cpus_per_run`` (torch threads) and ``gpus_per_run`` (fractional) size each one,
            ``max_retries`` retries a unit whose worker died (see ``executors``).
        analysis: options of the significance / robustness reports and figures
            (``benchmark.analysis.AnalysisOptions`` fields: ``compare``, ``bands``, ``n_boot``,
            ``boot_seed``, ``fraction``, ``baseline``).
        experiment: ``table1`` (default), or one of the DAR paper's experiments run as training
            variants (``ablation`` = Table 2, ``train-rate`` = Table 3, ``recipe``; see
            :mod:`dar_mmsa.benchmark.experiments`); their models default to ``dar``.
        variants: the experiment's variant keys to plan (default: all), e.g. ``("wo-diff", "full")``.
        precision: ``fp32``, ``bf16`` or ``fp16`` (CUDA) autocast for dar_mmsa's models (MMSA's
            train in fp32); part of the training config hash unless fp32.
        eval_batch_size: batch size of the test evaluations (default: the training batch size).
        loader_workers: DataLoader workers (default 2 on cuda, 0 on cpu; pinned memory on cuda).

    Raises ``DarMmsaError`` (one line) for any bad input, before anything is trained.
    """
    say = say or (lambda message: print(message, file=sys.stderr))
    chosen = select_variants(get_experiment(experiment), variants)
    models = models or chosen.default_models
    if quick:
        models = models or QUICK_MODELS
        seeds = seeds or QUICK_SEEDS
    models, datasets = check_models(models or DEFAULT_MODELS), tuple(dict.fromkeys(check_dataset(d) for d in datasets))
    if not datasets:
        raise ConfigError(f"no datasets given: choose from {', '.join(DATASETS)}")
    if rates_per_modality and rates is not None:
        raise ConfigError("give --rates or --rates-per-modality, not both "
                          "(per-modality settings replace the rate grid)")
    if rates_per_modality and protocol == "inter":
        raise ConfigError("--rates-per-modality belongs to the intra-modal protocol: use --protocol intra or all")
    if rates is not None and protocol == "inter":
        raise ConfigError("--rates belongs to the intra-modal protocol: use --protocol intra or all")
    if drop_rates is not None and protocol == "intra":
        raise ConfigError("--drop-rates belongs to the inter-modal protocol: use --protocol inter or all")
    analysis_options = check_analysis(analysis, models)
    settings_per_modality = None
    if rates_per_modality:
        tokens = [t for t in rates_per_modality if isinstance(t, str)]
        settings_per_modality = parse_rates_per_modality(tokens) + [dict(t) for t in rates_per_modality
                                                                    if not isinstance(t, str)]
    conditions = conditions_for(protocol, DEFAULT_RATES if rates is None else rates,
                                DEFAULT_DROP_RATES if drop_rates is None else drop_rates, settings_per_modality,
                                masks=masks)
    overrides = dict(QUICK_OVERRIDES if quick else {}, **(overrides or {}))
    config_file = Path(config_file) if config_file else None
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} not found: pass an existing --config or omit it")
    synthetic = (data_root is None and not os.environ.get(ENV_DATA_ROOT)) or \
        is_synthetic(data_root or os.environ[ENV_DATA_ROOT])
    store = ResultStore(Path(out) / (name or default_name(quick, synthetic)))
    backend_options = BackendOptions(backend, jobs, cpus_per_run, gpus_per_run, ray_address, max_retries).checked()
    settings = Settings(models, datasets, check_seeds(seeds or DEFAULT_SEEDS), tuple(conditions),
                         backend_options.resolve_device(device), config_file, overrides, store, experiment=chosen)
    settings.precision, settings.eval_batch_size, settings.loader_workers = check_speed(
        precision, eval_batch_size, loader_workers, settings.device, models, say)
    settings.store.check_writable()
    with settings.store.lock(), make_executor(backend_options) as executor:
        synthetic_scale = prepare_inputs(settings, data_root=data_root, pretrained=pretrained, quick=quick)
        if synthetic_scale is not None and not quick:
            say(f"warning: no --data-root and no ${ENV_DATA_ROOT}: training on synthetic data "
                f"(its numbers say nothing about MOSI/MOSEI)")
        planned = plan(settings)
        if synthetic_scale is not None:
            write_synthetic_data(settings.data_root, settings.datasets, synthetic_scale)
        check_data(planned, keep_first=backend_options.backend == "serial")  # Ray workers load their own
        check_store(settings, planned, eval_only)
        executor.start(settings)
        execution = executor.run(planned, settings, progress=progress, say=say)
        if chosen.is_table1:
            result = write_reports(settings, planned, with_reported=with_reported, say=say, analysis=analysis_options)
        else:
            result = write_experiment_reports(settings, planned, with_reported=with_reported)
    result.trained, result.evaluated, result.failures = execution.trained, execution.evaluated, execution.failures
    text = summary_text(result, settings.seeds) if chosen.is_table1 else experiment_summary_text(result)
    result.summary = text + "\n" + execution.describe()
    summary_file = "summary.txt" if chosen.is_table1 else f"{chosen.stem}_summary.txt"
    write_atomic(result.root / summary_file, (result.summary + "\n").encode())
    return result


def report(root, *, analysis: Optional[Mapping] = None, with_reported: Optional[bool] = None,
           say=None) -> BenchmarkResult:
    """Rebuild every report of a results folder from its store (nothing trained or evaluated);
    ``analysis`` overrides the options stored with the last command's reports."""
    store = ResultStore(root)
    if not store.runs.is_dir():  # before the lock, which would create the folder
        raise ConfigError(f"{store.root} holds no results store (no store/runs/): pass the folder a benchmark "
                          f"wrote, e.g. results/synthetic-quick")
    if analysis:
        check_analysis(analysis, None)
    with store.lock():
        return rebuild_reports(store.root, analysis=analysis, with_reported=with_reported, say=say)


__all__ = ["run", "report", "BenchmarkResult", "summary_text"]
