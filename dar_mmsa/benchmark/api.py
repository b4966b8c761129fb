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

import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence

from ..errors import ConfigError
from ..registry import DATASETS, ENV_DATA_ROOT, check_dataset
from .executors import BackendOptions, make_executor
from .experiments import get_experiment, select_variants
from .execute import pending_conditions
from .grid import DEFAULT_DROP_RATES, DEFAULT_RATES, DEFAULT_SEEDS, conditions_for, parse_rates_per_modality
from .plan import (DEFAULT_MODELS, check_speed, Settings, check_data, check_models,
                   check_seeds, check_store, default_name, is_synthetic, pick_data_root, plan, prepare_inputs,
                   write_synthetic_data)
from .presets import pick_preset, preset_overrides
from .analysis import check_analysis
from .experiment_reports import experiment_summary_text, write_experiment_reports
from .reports import BenchmarkResult, rebuild_reports, summary_text, write_reports
from .disk import check_budget, writing, writing_reports
from .store import ResultStore, write_atomic

CHECKPOINT_MODES = ("keep", "drop")


def run(models: Optional[Sequence[str]] = None, datasets: Sequence[str] = ("mosi",),
        seeds: Optional[Sequence[int]] = None, rates: Optional[Sequence[float]] = None, *, protocol: str = "intra",
        drop_rates: Optional[Sequence[float]] = None,
        rates_per_modality: Optional[Sequence] = None, data_root=None, pretrained=None, device: str = "auto",
        out="results", name: Optional[str] = None, quick: bool = False, smoke: bool = False,
        eval_only: bool = False, config_file=None,
        overrides: Optional[Mapping] = None, with_reported: bool = False, progress: bool = True,
        say=None, masks: str = "ours", analysis: Optional[Mapping] = None, experiment: str = "table1",
        variants: Optional[Sequence[str]] = None,
        backend: str = "serial", jobs: Optional[int] = None, cpus_per_run: Optional[float] = None,
        gpus_per_run: Optional[float] = None, ray_address: Optional[str] = None,
        max_retries: Optional[int] = None, precision: str = "fp32", eval_batch_size: Optional[int] = None,
        loader_workers: Optional[int] = None, checkpoints: str = "keep", no_retrain: bool = False,
        deterministic: bool = False) -> BenchmarkResult:
    """Run (or resume) the robustness benchmark and write its reports; see the module docstring.

    Args:
        models, datasets, seeds: the grid (defaults: ``dar misa self_mm`` -- ``dar misa`` with
            ``quick`` / ``smoke`` --, ``mosi``, seeds 1111 1112 1113 or the preset's).
        rates: test missing rates of the intra-modal protocol (default 0.0 .. 0.9, or the preset's).
        protocol: ``intra`` (Table 1), ``inter`` (modality subsets + random whole-modality drop
            at ``drop_rates``, default 0.1 .. 0.7) or ``all``.
        rates_per_modality: per-modality settings replacing ``rates``, as dicts
            ``{"text": .., "audio": .., "vision": ..}`` or tokens like ``["l=0.2", "a=0.5", "v=0.5"]``.
        data_root: MMSA dataset root; None -> ``$DAR_MMSA_DATA_ROOT`` or synthetic data.
        pretrained: local BERT directory (None -> config / ``$DAR_MMSA_PRETRAINED``; a tiny random
            BERT with ``quick`` or ``smoke``).
        out, name: outputs go to ``<out>/<name>/`` (default name from the preset and the data).
        quick: the README's run: small synthetic data, models that learn in minutes on a CPU
            (``presets.QUICK``; ``learned.py`` says whether they did).
        smoke: the pipeline only: small synthetic data, 2 epochs (``presets.SMOKE``; tests, CI).
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
            (``benchmark.analysis.AnalysisOptions`` fields: ``compare``, ``primary``, ``bands``,
            ``n_boot``, ``boot_seed``, ``fraction``, ``baseline``).
        experiment: ``table1`` (default), or one of the DAR paper's experiments run as training
            variants (``ablation`` = Table 2, ``train-rate`` = Table 3, ``recipe``; see
            :mod:`dar_mmsa.benchmark.experiments`); their models default to ``dar``.
        variants: the experiment's variant keys to plan (default: all), e.g. ``("wo-diff", "full")``.
        precision: ``fp32``, ``bf16`` or ``fp16`` (CUDA) autocast for dar_mmsa's models (MMSA's
            train in fp32); part of the training config hash unless fp32.
        eval_batch_size: batch size of the test evaluations (default: the training batch size).
        loader_workers: DataLoader workers (default 2 on cuda, 0 on cpu; pinned memory on cuda).
        deterministic: every unit uses torch's deterministic algorithms and no TF32
            (``training.determinism``); recorded with each run, not part of its hash.
        checkpoints: ``keep`` (default) every run's checkpoint, or ``drop`` it once all the run's
            conditions are stored (predictions, records and reports stay; ``load_run`` and new
            conditions then need a retrain). Before training, the checkpoints still to write must
            fit on the output filesystem (all of them with ``keep``, the largest with ``drop``).
        no_retrain: a missing or damaged stored checkpoint is an error naming the run folder,
            instead of being retrained (it always is with ``eval_only``).

    Raises ``DarMmsaError`` (one line) for any bad input, before anything is trained.
    """
    say = say or (lambda message: print(message, file=sys.stderr))
    if checkpoints not in CHECKPOINT_MODES:
        raise ConfigError(f"unknown checkpoints mode '{checkpoints}': use --checkpoints keep or --checkpoints drop")
    chosen = select_variants(get_experiment(experiment), variants)
    models = models or chosen.default_models
    preset = pick_preset(quick, smoke)
    if preset is not None:
        models = models or preset.models
        seeds = seeds or preset.seeds
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
    if rates is None and preset is not None and not settings_per_modality:
        rates = preset.rates
    conditions = conditions_for(protocol, DEFAULT_RATES if rates is None else rates,
                                DEFAULT_DROP_RATES if drop_rates is None else drop_rates, settings_per_modality,
                                masks=masks)
    overrides = dict(preset_overrides(preset, datasets), **(overrides or {}))
    config_file = Path(config_file) if config_file else None
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} not found: pass an existing --config or omit it")
    picked_root, _ = pick_data_root(data_root, config_file)
    synthetic = picked_root is None or is_synthetic(picked_root)
    store = ResultStore(Path(out) / (name or default_name(quick, synthetic, smoke)))
    backend_options = BackendOptions(backend, jobs, cpus_per_run, gpus_per_run, ray_address, max_retries).checked()
    settings = Settings(models, datasets, check_seeds(seeds or DEFAULT_SEEDS), tuple(conditions),
                         backend_options.resolve_device(device), config_file, overrides, store, experiment=chosen)
    settings.precision, settings.eval_batch_size, settings.loader_workers = check_speed(
        precision, eval_batch_size, loader_workers, settings.device, models, say,
        on_device=backend_options.backend == "serial")
    settings.checkpoints, settings.no_retrain = checkpoints, bool(no_retrain or eval_only)
    settings.deterministic = bool(deterministic)
    settings.store.check_writable()
    with writing(settings.store.root), settings.store.lock(), make_executor(backend_options) as executor:
        synthetic_scale = prepare_inputs(settings, data_root=data_root, pretrained=pretrained, quick=quick,
                                         smoke=smoke)
        if synthetic_scale is not None and preset is None:
            say(f"warning: no --data-root, no ${ENV_DATA_ROOT} and no existing dataset_root_dir in the config: "
                f"training on synthetic data "
                f"(its numbers say nothing about MOSI/MOSEI)")
        planned = plan(settings)
        if synthetic_scale is not None:
            write_synthetic_data(settings.data_root, settings.datasets, synthetic_scale)
        check_data(planned, keep_first=backend_options.backend == "serial")  # Ray workers load their own
        check_store(settings, planned, eval_only)
        if checkpoints == "drop":  # runs finished earlier give their space back before anything trains
            for p in planned:
                if not pending_conditions(settings.store, p.run):
                    settings.store.drop_checkpoint(p.run.run_id)
        if not eval_only:
            check_budget(settings.store, planned, checkpoints=checkpoints, say=say)
        executor.start(settings)
        execution = executor.run(planned, settings, progress=progress, say=say)
        with writing_reports(settings.store.root):
            if chosen.is_table1:
                result = write_reports(settings, planned, with_reported=with_reported, say=say,
                                       analysis=analysis_options)
            else:
                result = write_experiment_reports(settings, planned, with_reported=with_reported)
    result.trained, result.evaluated, result.failures = execution.trained, execution.evaluated, execution.failures
    text = summary_text(result, settings.seeds) if chosen.is_table1 else experiment_summary_text(result)
    result.summary = (text + "\n" + execution.describe() + _dropped_line(settings.store, planned)
                      + f"\ndata root: {settings.data_root} ({settings.data_source})")
    summary_file = "summary.txt" if chosen.is_table1 else f"{chosen.stem}_summary.txt"
    with writing_reports(result.root):
        write_atomic(result.root / summary_file, (result.summary + "\n").encode())
    return result


def _dropped_line(store: ResultStore, planned) -> str:
    """The summary's line on runs whose checkpoint was dropped ('' if none)."""
    dropped = sum(1 for p in planned if (store.training(p.run.run_id) or {}).get("checkpoint_dropped")
                  and not store.checkpoint(p.run.run_id).is_file())
    if not dropped:
        return ""
    return (f"\ncheckpoints dropped (--checkpoints drop): {dropped} run(s) keep their predictions, records and "
            f"reports but no model.pth, so load_run and new conditions need a retrain")


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
    with store.lock(), writing_reports(store.root):
        return rebuild_reports(store.root, analysis=analysis, with_reported=with_reported, say=say)


__all__ = ["run", "report", "BenchmarkResult", "summary_text"]
