#!/usr/bin/env python
"""Robustness benchmark of the DAR paper (Table 1, Figure 4) for any registered model.

    python run_benchmark.py --models dar misa self_mm --datasets mosi --data-root ~/MMSA-data
    python run_benchmark.py --quick                  # tiny synthetic run, a few minutes on CPU
    python run_benchmark.py --quick --protocol inter # modality subsets + random modality drop

Rerunning a command resumes it: finished trainings and evaluations are reused. See docs/benchmark.md.
"""
from __future__ import annotations

import argparse
import json
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
                      "with --quick: dar misa); --list-models lists them")
    grid.add_argument("--datasets", nargs="+", default=["mosi"], metavar="DATASET",
                      help="mosi and/or mosei (default: mosi)")
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
                        help="override config keys for every run, e.g. --set max_epochs=5 batch_size=32")
    inputs.add_argument("--device", default="auto", help="auto, cpu or cuda:N (default: auto)")
    outputs = parser.add_argument_group("outputs")
    outputs.add_argument("--out", default="results", help="output folder (default: results)")
    outputs.add_argument("--name", help="results go to OUT/NAME (default: synthetic-quick with --quick, "
                         "synthetic on synthetic data, else default)")
    outputs.add_argument("--with-reported", action="store_true", help="add the DAR paper's reported rows to table1.tex")
    outputs.add_argument("--no-progress", action="store_true", help="no progress bar")
    speed = parser.add_argument_group("speed")
    speed.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                       help="autocast precision of dar_mmsa's models (fp16: CUDA only, with loss scaling; "
                            "MMSA's models always train in fp32; default: fp32)")
    speed.add_argument("--eval-batch-size", type=int, metavar="N",
                       help="batch size of the test evaluations (default: the training batch size; "
                            "results do not depend on it)")
    speed.add_argument("--loader-workers", type=int, metavar="N",
                       help="DataLoader worker processes (default: 2 on cuda, 0 on cpu); on cuda batches "
                            "also come from pinned memory")
    modes = parser.add_argument_group("modes")
    modes.add_argument("--quick", action="store_true", help="tiny synthetic data, tiny BERT, 2 epochs (minutes on CPU)")
    modes.add_argument("--eval-only", action="store_true", help="evaluate saved checkpoints only (e.g. new rates)")
    modes.add_argument("--list-models", action="store_true", help="list the runnable models and exit")
    return parser


def list_models_text() -> str:
    import dar_mmsa
    from dar_mmsa.registry import get_entry, our_models
    from dar_mmsa.report.names import model_display_name

    lines = []
    for name in dar_mmsa.list_models():
        origin = "dar_mmsa" if name in our_models() else "MMSA"
        description = get_entry(name).description if name in our_models() else ""
        lines.append(f"{name:12} {model_display_name(name):32} {origin:8} {description}".rstrip())
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from dar_mmsa.errors import DarMmsaError

    try:
        if args.list_models:
            print(list_models_text())
            return 0
        from dar_mmsa.benchmark import run

        result = run(models=args.models, datasets=args.datasets, seeds=args.seeds, rates=args.rates,
                     protocol=args.protocol, drop_rates=args.drop_rates, rates_per_modality=args.rates_per_modality,
                     data_root=args.data_root, pretrained=args.pretrained, device=args.device, out=args.out,
                     name=args.name, quick=args.quick, eval_only=args.eval_only, config_file=args.config,
                     overrides=dict(args.overrides), with_reported=args.with_reported, progress=not args.no_progress,
                     precision=args.precision, eval_batch_size=args.eval_batch_size,
                     loader_workers=args.loader_workers)
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
