"""``python -m dar_mmsa``: MMSA's command line (``python -m MMSA``) for every registered model.

MMSA 2.2.1's own ``__main__`` hard-codes its list of model names; this one takes the same options
with the same meanings for every model MMSA can build and ours: without ``-c``, MMSA's own default
config (``config_tune.json`` with ``-t``, else ``config_regression.json``), our models' entries
added. It adds ``--data-root`` (the folder holding ``MOSI/``, ``MOSEI/``, ``SIMS/``, in place of the
config's ``dataset_root_dir``), ``--pretrained`` (a BERT directory or hub name for every model) and
``--list-models``. Errors a user can fix print one line and exit with 2.

``python -m dar_mmsa predict --run RUN --features FILE.pkl [--split test] [--missing-rate r]
[--out FILE.csv]`` runs a stored benchmark run on an MMSA-format feature pickle
(``dar_mmsa.inference``); any other first argument is MMSA's command line as before.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


MMSA_DATASETS = ("mosi", "mosei", "sims")  # MMSA 2.2.1's SUPPORTED_DATASETS


def run_overrides(args) -> dict:
    """``MMSA_run(config=...)`` for ``--data-root`` and ``--pretrained``: the file MMSA would read, moved
    under the given root (``<DATASET>/Processed/<file>.pkl``), and the BERT."""
    import MMSA

    overrides = {}
    if args.data_root:
        load = MMSA.get_config_tune if args.tune else MMSA.get_config_regression
        default = load(args.model, args.dataset, args.config or "")["featurePath"]
        overrides["featurePath"] = os.path.join(os.path.abspath(args.data_root), *Path(default).parts[-3:])
    if args.pretrained:
        local = os.path.abspath(args.pretrained)
        overrides["pretrained"] = local if os.path.exists(local) else args.pretrained
    return overrides


def parse_args(argv=None):
    from .registry import list_models

    parser = argparse.ArgumentParser(prog="python -m dar_mmsa", description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", type=str.lower, help=f"model name: {', '.join(list_models())}")
    parser.add_argument("-d", "--dataset", type=str.lower, default="mosi", help=f"one of {', '.join(MMSA_DATASETS)}")
    parser.add_argument("-c", "--config", default="", help="MMSA-format config file (default: MMSA's own, "
                        "config_tune.json with -t, with our models' entries added)")
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
    parser.add_argument("--data-root", default=None, help="directory holding MOSI/Processed/*.pkl, MOSEI/, SIMS/ "
                        "(default: the config's dataset_root_dir)")
    parser.add_argument("--pretrained", default=None, help="BERT for every model: a local directory (config.json, "
                        "weights, vocab.txt) or a hub name (default: the config's)")
    parser.add_argument("--list-models", action="store_true", help="print every runnable model and exit")
    return parser.parse_args(argv)


def parse_predict_args(argv):
    parser = argparse.ArgumentParser(prog="python -m dar_mmsa predict",
                                     description="per-sample predictions of a stored benchmark run (CSV)")
    parser.add_argument("--run", required=True, help="run folder (results/<name>/store/runs/<run_id>) or run id")
    parser.add_argument("--features", required=True, help="MMSA-format feature pickle ({split: {text_bert, audio, "
                        "vision, ...}})")
    parser.add_argument("--split", default="test", help="split of the pickle to predict (default: test)")
    parser.add_argument("--missing-rate", type=float, default=0.0,
                        help="corrupt the inputs first with the benchmark's protocol (default: 0)")
    parser.add_argument("--out", help="CSV file to write (default: standard output)")
    parser.add_argument("--pretrained", help="BERT directory, if not the run's recorded one (same architecture)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda:N or auto (default: cpu)")
    parser.add_argument("--batch-size", type=int, help="default: the batch size the run was evaluated with")
    return parser.parse_args(argv)


def predict_main(argv) -> int:
    import numpy as np

    from .errors import DarMmsaError

    args = parse_predict_args(argv)
    try:
        from .benchmark.store import write_atomic
        from .inference import load_run

        predictor = load_run(args.run, pretrained=args.pretrained, device=args.device, batch_size=args.batch_size)
        frame = predictor.predict_features(args.features, split=args.split, missing_rate=args.missing_rate)
        for column in ("label", "prediction"):  # shortest text that reads back as the same float32
            if column in frame:
                frame[column] = [np.format_float_positional(np.float32(v), unique=True, trim="-")
                                 for v in frame[column]]
        text = frame.to_csv(index=False)
        if args.out:
            try:
                write_atomic(args.out, text.encode())
            except OSError as exc:
                raise DarMmsaError(f"cannot write {args.out} ({exc.strerror or exc}): pass a writable --out") from None
        else:
            sys.stdout.write(text)
    except DarMmsaError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["predict"]:
        return predict_main(argv[1:])
    from . import registry
    from .errors import ConfigError, DarMmsaError
    from .model_list import availability_text

    args = parse_args(argv)
    try:
        if args.list_models:
            from .config import mmsa_config_path

            config = args.config or mmsa_config_path("tune" if args.tune else "regression")
            print(availability_text(config, benchmark=False, describe=lambda name: (
                "dar_mmsa" if name in registry.our_models() else "MMSA 2.2.1")))
            return 0
        if not args.model:
            raise ConfigError("no model given: pass -m MODEL (see --list-models)")
        if args.model not in registry.list_models():
            raise ConfigError(f"unknown model '{args.model}': choose one of {', '.join(registry.list_models())}")
        if args.dataset not in MMSA_DATASETS:
            raise ConfigError(f"unknown dataset '{args.dataset}': choose one of {', '.join(MMSA_DATASETS)}")
        if args.config and not os.path.isfile(args.config):
            raise ConfigError(f"config file {args.config} not found: pass an existing -c file or omit it")
        import MMSA

        from .data.features import plain_data_warnings

        load = MMSA.get_config_tune if args.tune else MMSA.get_config_regression
        try:
            load(args.model, args.dataset, args.config or "")
        except KeyError as exc:
            raise ConfigError(f"config file {args.config or 'of MMSA'} has no entry {exc} for {args.model}/"
                              f"{args.dataset}: pass a -c file that has one") from None

        with plain_data_warnings():
            MMSA.MMSA_run(
                model_name=args.model, dataset_name=args.dataset, config_file=args.config or None,
                config=run_overrides(args) or None, seeds=args.seeds,
                is_tune=args.tune, tune_times=args.tune_times,
                feature_T=args.feature_T, feature_A=args.feature_A, feature_V=args.feature_V,
                gpu_ids=args.gpu_ids, num_workers=args.num_workers, verbose_level=args.verbose,
                model_save_dir=args.model_save_dir or None, res_save_dir=args.res_save_dir or None,
                log_dir=args.log_dir or None,
            )
    except DarMmsaError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
