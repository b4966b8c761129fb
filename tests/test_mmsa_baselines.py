"""MMSA 2.2.1's own baselines train and test on CPU through MMSA's trainers, via our registry hooks."""
import math

import pytest

from dar_mmsa.runner import run_once

METRIC_KEYS = {"Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score", "Mult_acc_5", "Mult_acc_7", "MAE",
               "Corr", "Loss"}

# one short run each: MMSA's trainers only stop early, our `max_epochs` caps them
SHORT = {
    "misa": {"max_epochs": 1, "batch_size": 16},
    "self_mm": {"max_epochs": 2, "batch_size": 16},  # epoch 2 exercises Self-MM's label update
    "mmim": {"max_epochs": 1, "batch_size": 16},
    "tfr_net": {"max_epochs": 1, "batch_size": 8, "nlevels": 1},  # its attention spans all 375/500 frames
}


@pytest.mark.parametrize("model", sorted(SHORT))
def test_mmsa_baseline_trains_and_tests_on_cpu(model, run_kwargs):
    results = run_once(model, "mosi", overrides=SHORT[model], **run_kwargs)
    assert METRIC_KEYS <= set(results)
    assert math.isfinite(results["MAE"]) and math.isfinite(results["Loss"])
    assert run_kwargs["save_path"].exists()


def test_max_epochs_caps_mmsa_trainer(run_kwargs):
    from dar_mmsa.runner import build_args, load_data

    args = build_args("misa", "mosi", overrides={"max_epochs": 2, "early_stop": 100, "batch_size": 16}, **run_kwargs)
    loaders = load_data(args)
    calls = []
    train_with_spy(args, loaders, calls)
    assert calls.count("VAL") == 2


def train_with_spy(args, loaders, calls):
    from dar_mmsa.runner import build_model, build_trainer, load_checkpoint

    model, trainer = build_model(args), build_trainer(args)
    do_test = trainer.do_test

    def spy(m, loader, mode="VAL", *a, **kw):
        calls.append(mode)
        return do_test(m, loader, mode, *a, **kw)

    trainer.do_test = spy
    trainer.do_train(model, loaders)
    return load_checkpoint(model, args), trainer


def test_mmsa_do_test_evaluates_the_model_it_is_given(run_kwargs):
    """MMIM's do_test used ``self.model`` from its do_train; a checkpoint loaded later was ignored."""
    import torch

    from dar_mmsa.runner import build_args, build_model, build_trainer, load_data, train

    args = build_args("mmim", "mosi", overrides=SHORT["mmim"], **run_kwargs)
    loaders = load_data(args)
    trained, trainer = train(args, loaders)
    torch.manual_seed(7)
    other = build_model(args)  # a different, untrained MMIM
    assert trainer.do_test(trained, loaders["test"], mode="TEST") != trainer.do_test(other, loaders["test"],
                                                                                     mode="TEST")
    fresh_trainer = build_trainer(args)  # evaluating a checkpoint without training first (the harness)
    fresh = fresh_trainer.do_test(trained, loaders["test"], mode="TEST")
    same = trainer.do_test(trained, loaders["test"], mode="TEST")
    fresh.pop("Loss"), same.pop("Loss")  # a mean of batch means; MMSA's test loader shuffles
    assert fresh == same


def test_aligned_override_switches_the_pickle(run_kwargs):
    from dar_mmsa.runner import build_args

    unaligned = build_args("misa", "mosi", **run_kwargs)
    aligned = build_args("misa", "mosi", overrides={"need_data_aligned": True}, **run_kwargs)
    assert unaligned["featurePath"].endswith("MOSI/Processed/unaligned_50.pkl")
    assert aligned["featurePath"].endswith("MOSI/Processed/aligned_50.pkl")
    assert aligned["featurePath"].startswith(run_kwargs["data_root"]) and list(aligned["seq_lens"]) == [50, 50, 50]
