"""Command-line traps (issue 9, item 5): repeated --set, ignored option combinations, the model
list, and training on synthetic data without --quick."""
import pytest

import run_benchmark
from dar_mmsa.model_list import model_availability


class _Stop(Exception):
    pass


def _stop(*args, **kwargs):
    raise _Stop


def test_repeated_set_accumulates():
    args = run_benchmark.build_parser().parse_args(["--set", "max_epochs=1", "--set", "batch_size=8", "lr=0.5"])
    assert dict(args.overrides) == {"max_epochs": 1, "batch_size": 8, "lr": 0.5}


@pytest.mark.parametrize("argv,expected", [
    (["--rates", "0.5", "--protocol", "inter"], "--rates belongs to the intra-modal protocol"),
    (["--masks", "lnln", "--protocol", "inter"], "--masks belongs to the intra-modal protocol"),
    (["--models", "tfm"], "unknown model 'tfm': runnable models are almt, cenet, dar"),
])
def test_ignored_combinations_are_errors(argv, expected, tmp_path, capsys, monkeypatch):
    from dar_mmsa.benchmark import api

    monkeypatch.setattr(api, "prepare_inputs", _stop)  # were the combination accepted, stop before any work
    assert run_benchmark.main(argv + ["--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing ran, nothing written


def test_unknown_model_lists_only_runnable_models(capsys):
    run_benchmark.main(["--models", "nope"])
    err = capsys.readouterr().err
    names = err.split("runnable models are ")[1].split(" (")[0].split(", ")
    assert "misa" in names and "tfn" not in names and "ef_lstm" not in names


def test_list_models_runnable_first_with_reasons(capsys):
    assert run_benchmark.main(["--list-models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    split = lines.index("not runnable with this config:")
    runnable = [line.split()[0] for line in lines[1:split]]
    others = {line.split()[0]: line for line in lines[split + 1:]}
    assert lines[0] == "runnable:"
    assert set(runnable) == {"almt", "cenet", "dar", "derl", "lnln", "misa", "mmim", "self_mm", "tetfn", "tfr_net"}
    assert "GloVe" in others["tfn"] and "no entry" in others["bert_mag"]
    assert len(runnable) + len(others) == 23


def test_glove_entry_in_config_is_not_runnable_for_the_benchmark(tmp_path):
    import json

    from dar_mmsa.config import build_config, mmsa_default_config

    config = build_config()
    config["tfn"] = mmsa_default_config()["tfn"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    runnable, others = model_availability(path, benchmark=True)
    assert "tfn" not in runnable and "GloVe" in others["tfn"]
    runnable, _ = model_availability(path, benchmark=False)  # MMSA's own CLI can run it
    assert "tfn" in runnable


def test_mmsa_cli_list_models(capsys):
    from dar_mmsa.__main__ import main

    assert main(["--list-models"]) == 0  # no -c: MMSA's own config, which has every MMSA model; ours added
    out = capsys.readouterr().out
    assert out.index("runnable:") < out.index("misa") and "not runnable" not in out
    assert "\n  tfn " in out and "\n  dar " in out




@pytest.mark.parametrize("preset", [None, "quick", "smoke"])
def test_warning_before_training_on_synthetic_data(preset, tmp_path, monkeypatch):
    from dar_mmsa.benchmark import api

    monkeypatch.delenv("DAR_MMSA_DATA_ROOT", raising=False)
    monkeypatch.setattr(api, "prepare_inputs", lambda settings, **kw: 1.0)  # synthetic, nothing written

    def stop(settings):
        raise _Stop

    monkeypatch.setattr(api, "plan", stop)
    said = []
    with pytest.raises(_Stop):
        api.run(models=["dar"], quick=preset == "quick", smoke=preset == "smoke", out=tmp_path, device="cpu",
                progress=False, say=said.append)
    warnings = [m for m in said if "synthetic data" in m]
    assert len(warnings) == (0 if preset else 1)
    if not preset:
        assert warnings[0].startswith("warning: ") and "\n" not in warnings[0]
