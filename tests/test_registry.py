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
    for _ in range(2):  # a second run in one process must not stack logging handlers
        MMSA.MMSA_run("placeholder", "mosi", config_file=str(placeholder_config), seeds=[1111], gpu_ids=[],
                      num_workers=0, verbose_level=0, **dirs)
    assert Placeholder.built == 2
    assert len(logging.getLogger("MMSA").handlers) == 2  # one file, one stream handler
    csv = (tmp_path / "res" / "normal" / "mosi.csv").read_text()
    assert "placeholder" in csv and "np.float64" not in csv
    log = (tmp_path / "logs" / "placeholder-mosi.log").read_text()
    assert log.count("Program Start") == 2  # each run logged once, not once per stacked handler


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
    with pytest.raises(ConfigError, match="unknown dataset 'sims'.*mosi, mosei"):
        build_args("misa", "sims")


def test_shipped_config_is_generated_from_the_registry():
    shipped = json.loads(REPO_CONFIG.read_text())
    assert shipped == json.loads(json.dumps(build_config()))
    assert shipped["datasetCommonParams"]["dataset_root_dir"] == ""
    for name in ("misa", "self_mm", "mmim", "tfr_net", *registry.our_models()):
        assert set(shipped[name]["datasetParams"]) == {"mosi", "mosei"}


def test_cli_lists_models_and_rejects_unknown_ones():
    out = subprocess.run([sys.executable, "-m", "dar_mmsa", "--list-models"], capture_output=True, text=True)
    assert out.returncode == 0 and "misa" in out.stdout and "MMSA 2.2.1" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "dar_mmsa", "-m", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "unknown model 'nope'" in bad.stderr
