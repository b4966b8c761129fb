"""The registry against the real installed MMSA: our models built by MMSA's own entry points."""
import json
import logging
import subprocess
import sys

import MMSA
import pytest
import torch
from torch import nn

import dar_mmsa
from dar_mmsa import mmsa_hooks, registry
from dar_mmsa.config import REPO_CONFIG, build_config
from dar_mmsa.errors import ConfigError
from dar_mmsa.training.base import Trainer


class Placeholder(nn.Module):
    """A test-only model on GloVe text (``use_bert`` false): mean-pooled modalities -> linear. Never shipped."""

    built = 0

    def __init__(self, args):
        super().__init__()
        Placeholder.built += 1
        self.head = nn.Linear(sum(args["feature_dims"]), 1)

    def forward(self, text, audio, vision, **_):
        return {"M": self.head(torch.cat([text.mean(1), audio.mean(1), vision.mean(1)], dim=-1))}


PLACEHOLDER_DEFAULTS = {
    "commonParams": {"need_data_aligned": False, "use_bert": False, "early_stop": 2, "max_epochs": 2},
    "datasetParams": {"mosi": {"batch_size": 16, "learning_rate": 1e-3}, "mosei": {"batch_size": 16}},
}


@pytest.fixture
def placeholder_config(tmp_path, synthetic_root):
    registry.register_model("placeholder", trainer=Trainer, defaults=PLACEHOLDER_DEFAULTS)(Placeholder)
    config = build_config()
    config["datasetCommonParams"]["dataset_root_dir"] = synthetic_root
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    yield path
    registry._MODELS.pop("placeholder")


def test_list_models_has_ours_and_mmsas():
    names = dar_mmsa.list_models()
    assert {"misa", "self_mm", "mmim", "tfr_net", "lf_dnn"} <= set(names)
    assert set(registry.our_models()) <= set(names)
    assert dar_mmsa.list_models("self*") == ["self_mm"]


def test_register_is_idempotent():
    from MMSA.models import AMIO

    init = AMIO.__init__
    dar_mmsa.register()
    mmsa_hooks._INSTALLED = False
    dar_mmsa.register()
    assert AMIO.__init__ is init
    assert getattr(MMSA.MMSA_run, "__dar_mmsa__", False)


def test_mmsa_run_builds_our_model_on_cpu_twice(placeholder_config, tmp_path):
    Placeholder.built = 0
    dirs = dict(model_save_dir=tmp_path / "models", res_save_dir=tmp_path / "res", log_dir=tmp_path / "logs")
    for _ in range(2):
        MMSA.MMSA_run("placeholder", "mosi", config_file=str(placeholder_config), seeds=[1111], gpu_ids=[],
                      num_workers=0, verbose_level=0, **dirs)
    assert Placeholder.built == 2
    # MMSA's logging is stock MMSA's: each MMSA_run adds its file and stream handler again
    assert len(logging.getLogger("MMSA").handlers) == 4
    csv = (tmp_path / "res" / "normal" / "mosi.csv").read_text()
    assert "placeholder" in csv and "np.float64" not in csv


def test_default_configs_add_our_entries_and_keep_mmsas(tmp_path):
    from dar_mmsa.config import mmsa_default_config

    assert MMSA.get_config_regression("misa", "mosi") == MMSA.config.get_config_regression.__wrapped__("misa", "mosi")
    assert MMSA.get_config_tune("misa", "mosi")["d_paras"] == MMSA.config.get_config_all("tune")["misa"][
        "debugParams"]["d_paras"]
    for kind, load in (("regression", MMSA.get_config_regression), ("tune", MMSA.get_config_tune)):
        for name in registry.our_models():
            args = load(name, "mosi")
            assert args["model_name"] == name and args["featurePath"].endswith("MOSI/Processed/" + (
                "aligned_50.pkl" if args["need_data_aligned"] else "unaligned_50.pkl"))
            defaults = registry.get_entry(name).defaults
            expected = dict(defaults["commonParams"], **defaults["datasetParams"]["mosi"])
            searched = set(args.get("d_paras", ()))
            assert {k: args[k] for k in expected if k not in searched} == \
                {k: v for k, v in expected.items() if k not in searched}, (kind, name)
            for key in searched:
                assert args[key] in registry.get_entry(name).search_space[key]
    # a user's file with its own 'dar' entry: that entry is used, not ours
    mine = mmsa_default_config()
    mine["dar"] = json.loads(json.dumps(registry.get_entry("dar").defaults))
    mine["dar"]["datasetParams"]["mosi"]["dim"] = 64
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(mine))
    assert MMSA.get_config_regression("dar", "mosi", str(path))["dim"] == 64
    assert MMSA.get_config_regression("dar", "mosi")["dim"] == registry.get_entry("dar").defaults[
        "datasetParams"]["mosi"]["dim"]


def test_tune_entries_come_from_the_search_spaces():
    from dar_mmsa.config import build_config

    tune = build_config("tune")
    for name in registry.our_models():
        space = registry.get_entry(name).search_space
        debug = tune[name]["debugParams"]
        assert debug["d_paras"] == sorted(space)
        assert {k: debug[k] for k in space} == {k: list(v) for k, v in space.items()}
    assert tune["misa"] == MMSA.config.get_config_all("tune")["misa"]


def test_cpu_set_device_is_a_no_op_only_for_cpu():
    import MMSA.run as run

    run.torch.cuda.set_device(torch.device("cpu"))  # MMSA_run does this; raw torch raises here
    assert run.torch.zeros(1).shape == (1,)
    if not torch.cuda.is_available():
        with pytest.raises(Exception):
            run.torch.cuda.set_device(torch.device("cuda:0"))


@pytest.mark.parametrize("module", ["MMSA.trains.singleTask.MMIM", "MMSA.trains.singleTask.MULT",
                                    "MMSA.trains.missingTask.TFR_NET"])
def test_reduce_lr_on_plateau_accepts_verbose(module):
    import importlib

    cls = importlib.import_module(module).ReduceLROnPlateau
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = cls(opt, mode="min", factor=0.5, patience=0, verbose=True)
    scheduler.step(1.0)
    scheduler.step(2.0)
    assert opt.param_groups[0]["lr"] == 0.5
    with pytest.raises(TypeError):  # the real torch still rejects it: the fix is ours, not torch's
        torch.optim.lr_scheduler.ReduceLROnPlateau(opt, verbose=True)


def test_tfr_net_text_encoder_uses_configured_bert(run_kwargs, tiny_bert):
    from dar_mmsa.runner import build_args, build_model

    args = build_args("tfr_net", "mosi", **run_kwargs)
    args["seq_lens"] = (50, 375, 500)
    model = build_model(args)
    assert model.Model.text_model.model.config.num_hidden_layers == 1  # the tiny BERT, not bert-base


def test_unknown_names_fail_with_one_line():
    from dar_mmsa.runner import build_args

    with pytest.raises(ConfigError, match="unknown model 'nope'.*dar"):
        build_args("nope", "mosi")
    with pytest.raises(ConfigError, match="unknown dataset 'iemocap'.*mosi, mosei, sims"):
        build_args("misa", "iemocap")


def test_shipped_config_is_generated_from_the_registry():
    shipped = json.loads(REPO_CONFIG.read_text())
    assert shipped == json.loads(json.dumps(build_config()))
    shipped_tune = json.loads(REPO_CONFIG.with_name("config_tune.json").read_text())
    assert shipped_tune == json.loads(json.dumps(build_config("tune")))
    assert shipped["datasetCommonParams"]["dataset_root_dir"] == ""
    for name in ("misa", "self_mm", "mmim", "tfr_net", *registry.our_models()):
        unsupported = registry.get_entry(name).labels.get("unsupported", {}) if name in registry.our_models() else {}
        assert set(shipped[name]["datasetParams"]) == set(registry.DATASETS) - set(unsupported)


def test_cli_lists_models_and_rejects_unknown_ones():
    out = subprocess.run([sys.executable, "-m", "dar_mmsa", "--list-models"], capture_output=True, text=True)
    assert out.returncode == 0 and "misa" in out.stdout and "MMSA 2.2.1" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "dar_mmsa", "-m", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "unknown model 'nope'" in bad.stderr


def _cli_call(monkeypatch, argv):
    """The keyword arguments ``python -m dar_mmsa ARGV`` hands to ``MMSA_run`` (nothing is trained)."""
    from dar_mmsa.__main__ import main

    calls = []
    monkeypatch.setattr(MMSA, "MMSA_run", lambda **kwargs: calls.append(kwargs))
    assert main(argv) == 0
    return calls[0]


@pytest.mark.parametrize("model", ["lf_dnn", "tfn", "mctn", "misa", "dar"])
def test_cli_takes_every_mmsa_model_with_mmsas_default_config(monkeypatch, model):
    call = _cli_call(monkeypatch, ["-m", model, "-d", "mosi", "-s", "1111"])
    assert call["model_name"] == model and call["config_file"] is None and call["is_tune"] is False
    assert call["config"] is None and call["seeds"] == [1111]


def test_cli_tune_uses_the_tune_config_and_data_root_moves_the_file(monkeypatch, tmp_path):
    call = _cli_call(monkeypatch, ["-m", "dar", "-t", "-tt", "2", "--data-root", str(tmp_path),
                                   "--pretrained", str(tmp_path)])
    assert call["is_tune"] is True and call["tune_times"] == 2 and call["config_file"] is None
    assert call["config"] == {"featurePath": str(tmp_path / "MOSI" / "Processed" / "unaligned_50.pkl"),
                              "pretrained": str(tmp_path)}
    config = MMSA.get_config_tune("dar", "mosi")  # what MMSA_run(is_tune=True) reads without a file
    assert config["d_paras"] == sorted(registry.get_entry("dar").search_space)


def test_cli_unknown_dataset_and_missing_config_fail_in_one_line(capsys):
    from dar_mmsa.__main__ import main

    assert main(["-m", "misa", "-d", "iemocap"]) == 2
    assert "unknown dataset 'iemocap'" in capsys.readouterr().err
    assert main(["-m", "misa", "-c", "/no/such.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config file /no/such.json not found") and err.count("\n") == 1
