#!/usr/bin/env python
"""Robustness benchmark of the DAR paper (Table 1, Figure 4) for any registered model.

    python run_benchmark.py --models dar misa self_mm --datasets mosi --data-root ~/MMSA-data
    python run_benchmark.py --quick                  # small synthetic run whose models learn, minutes on CPU
    python run_benchmark.py --smoke                  # the pipeline only: 2 epochs (tests, CI)
    python run_benchmark.py --quick --protocol inter # modality subsets + random modality drop

Rerunning a command resumes it: finished trainings and evaluations are reused. See docs/benchmark.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def _assignment(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE (e.g. --set max_epochs=1)")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    grid = parser.add_argument_group("grid")
    grid.add_argument("--models", nargs="+", metavar="MODEL", help="models to run (default: dar misa self_mm; "
                      "with --quick or --smoke: dar misa); --list-models lists them")
    grid.add_argument("--datasets", nargs="+", default=["mosi"], metavar="DATASET",
                      help="mosi, mosei and/or sims (CH-SIMS) (default: mosi)")
    grid.add_argument("--seeds", nargs="+", metavar="SEED", help="training seeds (default: 1111 1112 1113)")
    grid.add_argument("--rates", nargs="+", metavar="RATE",
                      help="test missing rates in [0, 1] (default: 0.0 0.1 ... 0.9)")
    grid.add_argument("--protocol", default="intra", choices=("intra", "inter", "all"),
                      help="intra: missing positions (Table 1); inter: modality subsets and random "
                           "whole-modality drop; all: both (default: intra)")
    grid.add_argument("--drop-rates", nargs="+", metavar="RATE",
                      help="random whole-modality drop rates of --protocol inter (default: 0.1 ... 0.7)")
    grid.add_argument("--rates-per-modality", nargs="+", metavar="M=RATE",
                      help="per-modality missing rates instead of --rates, e.g. l=0.2 a=0.5 v=0.5 "
                           "(repeat a modality to start another setting)")
    inputs = parser.add_argument_group("inputs")
    inputs.add_argument("--data-root", help="MMSA dataset root holding MOSI/ and MOSEI/ (default: "
                        "$DAR_MMSA_DATA_ROOT, else synthetic data)")
    inputs.add_argument("--pretrained", help="local BERT directory (default: config / $DAR_MMSA_PRETRAINED)")
    inputs.add_argument("--config", help="MMSA-format config file (default: baselines_config/config_regression.json)")
    inputs.add_argument("--set", nargs="+", default=[], type=_assignment, metavar="KEY=VALUE", dest="overrides",
                        action="extend", help="override config keys for every run, e.g. --set max_epochs=5 "
                                              "batch_size=32 (repeatable)")
    inputs.add_argument("--device", default="auto", help="auto, cpu or cuda:N (default: auto)")
    outputs = parser.add_argument_group("outputs")
    outputs.add_argument("--out", default="results", help="output folder (default: results)")
    outputs.add_argument("--name", help="results go to OUT/NAME (default: synthetic-quick with --quick, synthetic-smoke with --smoke, "
                         "synthetic on synthetic data, else default)")
    outputs.add_argument("--with-reported", action="store_true", help="add the DAR paper's reported rows to table1.tex")
    outputs.add_argument("--no-progress", action="store_true", help="no progress bar")
    backend = parser.add_argument_group("backend", "where the runs execute (docs/benchmark.md, Backends)")
    backend.add_argument("--backend", default="serial", choices=("serial", "ray"),
                         help="serial: one run after another in this process (default); ray: runs in parallel "
                              "as Ray tasks (pip install 'dar_mmsa[ray]')")
    backend.add_argument("--jobs", type=int, metavar="N", help="at most N runs at a time (ray; default: as many as "
                         "the CPUs/GPUs hold)")
    backend.add_argument("--cpus-per-run", type=float, metavar="N", help="CPUs of one run = its torch threads "
                         "(ray default: 1; serial: sets the threads)")
    backend.add_argument("--gpus-per-run", type=float, metavar="G", help="GPUs of one run, fractional allowed "
                         "(0.5: two runs share a GPU); runs go to CUDA when given (ray)")
    backend.add_argument("--ray-address", metavar="ADDRESS", help="join a running Ray cluster (e.g. auto or "
                         "HEAD_IP:6379); default: start a local Ray on this machine")
    backend.add_argument("--max-retries", type=int, metavar="N", help="retries of a run whose worker died "
                         "(ray; default: 2), then it is reported as failed")
    analysis = parser.add_argument_group("analysis", "significance, robustness summaries, figures; "
                                         "--report-only redoes every report of OUT/NAME from its store")
    analysis.add_argument("--compare", metavar="MODEL", help="reference model of significance.csv, the "
                          "robustness leads and the table marks (default: dar when it runs, else the first of "
                          "--models; best: the best Table 1 average Non0 Acc-2, chosen on the test set)")
    analysis.add_argument("--primary", nargs="+", metavar="METRIC", help="metrics whose Table 1 average leads "
                          "make the primary family: significance is declared there, after Holm's adjustment "
                          "(default: Non0_acc_2 MAE)")
    analysis.add_argument("--bootstrap", type=int, metavar="N", dest="n_boot",
                          help="paired bootstrap draws (default: 10000; seeded, see --bootstrap-seed)")
    analysis.add_argument("--bootstrap-seed", type=int, metavar="SEED", dest="boot_seed", help="default: 0")
    analysis.add_argument("--breakdown-fraction", type=float, metavar="F", dest="fraction",
                          help="robustness.csv: first rate where a metric falls below F x its r=0 value (default: 0.9)")
    analysis.add_argument("--robustness-baseline", metavar="MODEL", dest="baseline",
                          help="baseline of effective robustness (default: the first of MMSA's models given)")
    analysis.add_argument("--bands", action="store_true", default=None, help="+-1 std bands over seeds in the figures")
    analysis.add_argument("--report-only", action="store_true",
                          help="rebuild every report of OUT/NAME from its store: nothing is trained or evaluated")
    experiment = parser.add_argument_group("experiment")
    experiment.add_argument("--experiment", default="table1", choices=("table1", "ablation", "train-rate", "recipe", "club-input", "tune"),
                            help="table1: the models under test missing rates (default); ablation: DAR's loss "
                                 "ablations (paper Table 2); train-rate: DAR trained at k = 0.0 ... 0.8 (Table 3); "
                                 "recipe: DAR's old training recipe against the new; club-input: CLUB on raw features "
                                 "against scale-free ones; tune: equal-budget hyperparameter search on validation "
                                 "(--trials, --epoch-cap; writes tuning.csv, tuned_config.json, tuning.tex); "
                                 "experiments default to "
                                 "--models dar and write <experiment table>.csv/.tex")
    experiment.add_argument("--variants", nargs="+", metavar="KEY",
                            help="only these variants of the experiment (ablation: wo-sim wo-diff wo-sim-diff "
                                 "wo-recon wo-boot full; train-rate: k0.0 k0.2 k0.4 k0.6 k0.8; recipe: old new; club-input: raw scale-free), "
                                 "e.g. to run or report part of a table")
    tuning = parser.add_argument_group("tuning", "--experiment tune: the same budget for every model "
                                       "(docs/benchmark.md, Tuning)")
    tuning.add_argument("--trials", type=int, metavar="N", help="trials per model and dataset (default: 16; --quick: 3)")
    tuning.add_argument("--epoch-cap", type=int, metavar="N", help="epochs per trial at most (default: 30; --quick: 2)")
    tuning.add_argument("--tune-seeds", nargs="+", type=int, metavar="SEED",
                        help="training seeds of every trial, objective averaged over them (default: 1111)")
    tuning.add_argument("--tune-metric", default="Loss", metavar="METRIC",
                        help="validation metric to optimise (default: Loss, the validation loss each model selects "
                             "on; MAE, Corr, Non0_acc_2, ... are maximised or minimised as fits)")
    tuning.add_argument("--tune-rates", nargs="+", type=float, metavar="RATE",
                        help="validation missing rates the objective averages over (default: 0 0.3 0.6 0.9)")
    speed = parser.add_argument_group("speed")
    speed.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                       help="autocast precision of dar_mmsa's models (fp16: CUDA only, with loss scaling; "
                            "MMSA's models always train in fp32; default: fp32)")
    speed.add_argument("--deterministic", action="store_true",
                       help="torch's deterministic algorithms (warning for ops that have none) and no TF32: "
                            "reruns on the same GPU type and software repeat their numbers; other GPU "
                            "types still differ (docs/benchmark.md, 'Determinism')")
    speed.add_argument("--eval-batch-size", type=int, metavar="N",
                       help="batch size of the test evaluations (default: the training batch size; "
                            "results do not depend on it)")
    speed.add_argument("--loader-workers", type=int, metavar="N",
                       help="DataLoader worker processes (default: 2 on cuda, 0 on cpu); on cuda batches "
                            "also come from pinned memory")
    modes = parser.add_argument_group("modes")
    modes.add_argument("--quick", action="store_true", help="small synthetic data, tiny BERT, models that learn "
                       "(minutes on CPU; the summary says whether each did)")
    modes.add_argument("--smoke", action="store_true", help="the pipeline only: tiny synthetic data, tiny BERT, "
                       "2 epochs (the models do not learn; for tests and CI)")
    modes.add_argument("--eval-only", action="store_true", help="evaluate saved checkpoints only (e.g. new rates)")
    modes.add_argument("--list-models", action="store_true", help="list the runnable models and exit")
    disk = parser.add_argument_group("disk", "checkpoints and free space (docs/benchmark.md, Disk)")
    disk.add_argument("--checkpoints", default="keep", choices=("keep", "drop"),
                      help="keep: every run's checkpoint stays in the store (default); drop: deleted once all "
                           "its conditions are stored (predictions, records and reports stay; load_run and new "
                           "conditions then need a retrain), and the free-space check asks only for the largest")
    disk.add_argument("--no-retrain", action="store_true",
                      help="a missing or damaged stored checkpoint is an error naming its run folder, instead of "
                           "being retrained")
    masks = parser.add_argument_group("masks")
    masks.add_argument("--masks", default="ours", choices=("ours", "lnln"),
                       help="intra-modal masks: ours (per-sample hash of the run seed) or lnln (LNLN's reference "
                            "masks: numpy seeded with 1111 per modality, one draw per split); default: ours")
    return parser


def list_models_text(config_file=None) -> str:
    """Runnable models first (in the config and reading BERT), then the others with why not."""
    import dar_mmsa  # noqa: F401  -- registers every model
    from dar_mmsa.model_list import availability_text
    from dar_mmsa.registry import get_entry, our_models
    from dar_mmsa.report.names import model_display_name

    def describe(name):
        origin = "dar_mmsa" if name in our_models() else "MMSA"
        description = get_entry(name).description if name in our_models() else ""
        return f"{model_display_name(name):32} {origin:8} {description}"

    return availability_text(config_file, benchmark=True, describe=describe)


def check_cli(args) -> None:
    """Combinations the command line would otherwise ignore, and unknown model names."""
    from dar_mmsa.errors import ConfigError
    from dar_mmsa.model_list import unknown_model_message

    for model in args.models or ():
        message = unknown_model_message(model, args.config, benchmark=True)
        if message:
            raise ConfigError(message)
    if args.masks != "ours" and args.protocol == "inter":
        raise ConfigError("--masks belongs to the intra-modal protocol: use --protocol intra or all")


TUNE_FLAGS = ("trials", "epoch_cap", "tune_seeds", "tune_rates")


def check_tune_flags(args) -> None:
    """The tuning flags belong to --experiment tune, and the grid's test flags do not."""
    from dar_mmsa.errors import ConfigError

    def flag(dest):
        return "--" + dest.replace("_", "-")

    if args.experiment != "tune":
        given = [flag(d) for d in TUNE_FLAGS if getattr(args, d) is not None]
        if args.tune_metric != "Loss":
            given.append("--tune-metric")
        if given:
            raise ConfigError(f"{', '.join(given)} belong{'s' * (len(given) == 1)} to --experiment tune: add it, or drop "
                              f"{'it' if len(given) == 1 else 'them'}")
        return
    grid = [name for name, used in (("--smoke (use --quick)", args.smoke), ("--seeds (use --tune-seeds)", args.seeds),
                                    ("--rates (use --tune-rates)", args.rates),
                                    ("--drop-rates", args.drop_rates), ("--rates-per-modality", args.rates_per_modality),
                                    ("--variants", args.variants), ("--eval-only", args.eval_only),
                                    ("--report-only", args.report_only), ("--with-reported", args.with_reported),
                                    ("--protocol", args.protocol != "intra"), ("--masks", args.masks != "ours")) if used]
    if grid:
        raise ConfigError(f"--experiment tune scores validation only: drop {', '.join(grid)}")


def run_tuning(args) -> int:
    from dar_mmsa.benchmark.tuning import tune
    from dar_mmsa.data.features import plain_data_warnings

    with plain_data_warnings():
        result = tune(models=args.models, datasets=args.datasets, trials=args.trials, epoch_cap=args.epoch_cap,
                      tune_seeds=args.tune_seeds, tune_metric=args.tune_metric, tune_rates=args.tune_rates,
                      data_root=args.data_root, pretrained=args.pretrained, device=args.device, out=args.out,
                      name=args.name, quick=args.quick, config_file=args.config, overrides=dict(args.overrides),
                      backend=args.backend, jobs=args.jobs, cpus_per_run=args.cpus_per_run,
                      gpus_per_run=args.gpus_per_run, ray_address=args.ray_address, max_retries=args.max_retries,
                      precision=args.precision, loader_workers=args.loader_workers)
    print(result.summary)
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from dar_mmsa.errors import DarMmsaError

    try:
        if args.list_models:
            print(list_models_text(args.config))
            return 0
        check_cli(args)
        check_tune_flags(args)
        if args.experiment == "tune":
            return run_tuning(args)
        analysis = {k: getattr(args, k) for k in ("compare", "primary", "n_boot", "boot_seed", "fraction", "baseline",
                                                   "bands")}
        if args.report_only:
            from dar_mmsa.benchmark import report
            from dar_mmsa.errors import ConfigError

            grid = [flag for flag, value in (("--models", args.models), ("--seeds", args.seeds), ("--rates", args.rates),
                                             ("--drop-rates", args.drop_rates), ("--set", args.overrides),
                                             ("--rates-per-modality", args.rates_per_modality),
                                             ("--eval-only", args.eval_only)) if value]
            if grid:
                raise ConfigError(f"--report-only reports the runs of the last command in OUT/NAME: drop "
                                  f"{', '.join(grid)} (or run without --report-only)")
            from dar_mmsa.benchmark.plan import default_name

            name = args.name or default_name(args.quick, not (args.data_root or os.environ.get("DAR_MMSA_DATA_ROOT")),
                                             args.smoke)
            result = report(os.path.join(args.out, name), analysis=analysis,
                            with_reported=True if args.with_reported else None)
            print(result.summary)
            return 0
        from dar_mmsa.benchmark import run
        from dar_mmsa.data.features import plain_data_warnings

        with plain_data_warnings():
            result = run(analysis=analysis, models=args.models, datasets=args.datasets, seeds=args.seeds, rates=args.rates,
                         protocol=args.protocol, drop_rates=args.drop_rates,
                         rates_per_modality=args.rates_per_modality,
                         data_root=args.data_root, pretrained=args.pretrained, device=args.device, out=args.out,
                         name=args.name, quick=args.quick, smoke=args.smoke, eval_only=args.eval_only,
                         config_file=args.config,
                         overrides=dict(args.overrides), with_reported=args.with_reported,
                         progress=not args.no_progress, masks=args.masks,
                         backend=args.backend, jobs=args.jobs, cpus_per_run=args.cpus_per_run,
                         gpus_per_run=args.gpus_per_run, ray_address=args.ray_address, max_retries=args.max_retries,
                         experiment=args.experiment, variants=args.variants, precision=args.precision,
                         eval_batch_size=args.eval_batch_size, loader_workers=args.loader_workers,
                         checkpoints=args.checkpoints, no_retrain=args.no_retrain,
                         deterministic=args.deterministic)
    except DarMmsaError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished evaluations are stored; rerun the same command to continue", file=sys.stderr)
        return 130
    print(result.summary)
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
