"""``python -m dar_mmsa``: MMSA's command line (``python -m MMSA``) for every registered model.

MMSA 2.2.1's own ``__main__`` hard-codes its list of model names; this one takes the same
options, knows our models too, defaults to our config file, and adds ``--data-root``,
``--pretrained`` and ``--list-models``. Errors a user can fix print one line and exit with 2.
"""
from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv=None):
    from .registry import DATASETS, list_models

    parser = argparse.ArgumentParser(prog="python -m dar_mmsa", description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", type=str.lower, help=f"model name: {', '.join(list_models())}")
    parser.add_argument("-d", "--dataset", type=str.lower, default="mosi", help=f"one of {', '.join(DATASETS)}")
    parser.add_argument("-c", "--config", default="", help="MMSA-format config file (default: dar_mmsa's)")
    parser.add_argument("-t", "--tune", action="store_true", help="MMSA's hyper-parameter tuning mode")
    parser.add_argument("-tt", "--tune-times", type=int, default=50)
    parser.add_argument("-s", "--seeds", action="append", type=int, default=[],
                        help="random seed; repeat for several (default: MMSA's 1111..1115)")
    parser.add_argument("-n", "--num-workers", type=int, default=0, help="data loader workers (default 0)")
    parser.add_argument("-v", "--verbose", type=int, default=1, help="0 errors, 1 info, 2 debug")
    parser.add_argument("--model-save-dir", default="", help='default "~/MMSA/saved_models"')
    parser.add_argument("--res-save-dir", default="", help='default "~/MMSA/results"')
    parser.add_argument("--log-dir", default="", help='default "~/MMSA/logs"')
    parser.add_argument("-g", "--gpu-ids", action="append", type=int, default=[],
                        help="GPU to use (default: the freest GPU, or the CPU when there is none)")
    parser.add_argument("-Ft", "--feature-T", default="")
    parser.add_argument("-Fa", "--feature-A", default="")
    parser.add_argument("-Fv", "--feature-V", default="")
    parser.add_argument("--data-root", default=None, help="directory holding MOSI/Processed/*.pkl, MOSEI/...")
    parser.add_argument("--pretrained", default=None, help="local BERT directory (config.json, weights, vocab.txt)")
    parser.add_argument("--list-models", action="store_true", help="print every runnable model and exit")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from . import registry
    from .errors import ConfigError, DarMmsaError

    from .model_list import availability_text, unknown_model_message

    args = parse_args(argv)
    try:
        if args.list_models:
            print(availability_text(args.config or None, benchmark=False, describe=lambda name: (
                "dar_mmsa" if name in registry.our_models() else "MMSA 2.2.1")))
            return 0
        if not args.model:
            raise ConfigError("no model given: pass -m MODEL (see --list-models)")
        message = unknown_model_message(args.model, args.config or None, benchmark=False)
        if message:
            raise ConfigError(message)
        registry.check_dataset(args.dataset)
        if args.data_root:
            os.environ[registry.ENV_DATA_ROOT] = os.path.abspath(args.data_root)
        if args.pretrained:
            os.environ[registry.ENV_PRETRAINED] = os.path.abspath(args.pretrained)
        import MMSA

        from .config import default_config_file
        from .data.features import plain_data_warnings

        with plain_data_warnings():
            MMSA.MMSA_run(
                model_name=args.model, dataset_name=args.dataset,
                config_file=args.config or str(default_config_file()), seeds=args.seeds,
                is_tune=args.tune, tune_times=args.tune_times,
                feature_T=args.feature_T, feature_A=args.feature_A, feature_V=args.feature_V,
                gpu_ids=args.gpu_ids, num_workers=args.num_workers, verbose_level=args.verbose,
                model_save_dir=args.model_save_dir or None, res_save_dir=args.res_save_dir or None,
                log_dir=args.log_dir or None,
            )
    except DarMmsaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
