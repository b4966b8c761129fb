"""MMSA's own API with the plugin imported: ``MMSA_run(config=...)`` overrides ``pretrained`` and
``featurePath`` with no ``DAR_MMSA_*`` variable set (issue 9, item 1); ``DAR_MMSA_PRETRAINED`` and the
sample-weighted ``Loss`` concern our models and the harness only (issue 21)."""
import json

import pandas as pd
import pytest

from dar_mmsa.data.synthetic import feature_path


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """No DAR_MMSA_* variable and an empty Hugging Face cache: 'bert-base-uncased' cannot resolve."""
    for key in ("DAR_MMSA_DATA_ROOT", "DAR_MMSA_PRETRAINED"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


def _config_file(tmp_path, model):
    """Our config as shipped (pretrained 'bert-base-uncased', empty dataset_root_dir), one epoch."""
    from dar_mmsa.config import build_config

    config = build_config()
    assert config["datasetCommonParams"]["dataset_root_dir"] == ""
    config[model]["commonParams"]["max_epochs"] = 1  # ours
    config[model]["commonParams"]["early_stop"] = 0  # MMSA's trainers: one epoch
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


@pytest.mark.parametrize("model", ["misa", "cenet"])
def test_mmsa_run_config_overrides_pretrained_and_feature_path(model, no_env, tmp_path, tiny_bert, small_mosi_root):
    import MMSA

    import dar_mmsa  # noqa: F401  -- the hooks are installed

    config_file = _config_file(tmp_path, model)
    assert json.loads(config_file.read_text())[model]["commonParams"].get("pretrained", "bert-base-uncased") \
        != tiny_bert
    features = feature_path(small_mosi_root, "mosi", aligned=False)
    MMSA.MMSA_run(model, "mosi", config_file=str(config_file),
                  config={"pretrained": tiny_bert, "featurePath": str(features)},
                  seeds=[1111], gpu_ids=[], num_workers=0, verbose_level=0,
                  model_save_dir=str(tmp_path / "models"), res_save_dir=str(tmp_path / "results"),
                  log_dir=str(tmp_path / "logs"))
    rows = pd.read_csv(tmp_path / "results" / "normal" / "mosi.csv")
    assert list(rows["Model"]) == [model]


def _args_at_run_start(monkeypatch, tmp_path, model, config):
    """The arguments ``MMSA.run._run`` is entered with (through our hook), for ``MMSA_run(model, config=)``."""
    import MMSA.run as run

    from dar_mmsa import mmsa_hooks

    seen = {}

    def fake_run(args, *rest, **kwargs):
        seen.update(args)
        raise KeyboardInterrupt  # stop before any data is read

    monkeypatch.setattr(run, "_run", mmsa_hooks._run_hook(fake_run))
    with pytest.raises(KeyboardInterrupt):
        run.MMSA_run(model, "mosi", config=config, seeds=[1111], gpu_ids=[], verbose_level=0,
                     model_save_dir=str(tmp_path / "m"), res_save_dir=str(tmp_path / "r"), log_dir=str(tmp_path / "l"))
    return seen


def test_config_override_of_pretrained_beats_env(monkeypatch, tmp_path, tiny_bert):
    """With DAR_MMSA_PRETRAINED set to a bad path, an explicit config= pretrained is used."""
    monkeypatch.setenv("DAR_MMSA_PRETRAINED", str(tmp_path / "no-such-bert"))
    seen = _args_at_run_start(monkeypatch, tmp_path, "dar",
                              {"pretrained": tiny_bert, "featurePath": str(tmp_path / "x.pkl")})
    assert seen["pretrained"] == tiny_bert
    assert seen["featurePath"] == str(tmp_path / "x.pkl")


def test_env_pretrained_and_data_root_leave_mmsa_models_alone(monkeypatch, tmp_path, tiny_bert):
    """Stock MMSA reads neither variable: MISA keeps its config's pretrained and featurePath; ours take them."""
    monkeypatch.setenv("DAR_MMSA_PRETRAINED", tiny_bert)
    monkeypatch.setenv("DAR_MMSA_DATA_ROOT", str(tmp_path / "root"))
    misa = _args_at_run_start(monkeypatch, tmp_path, "misa", {"featurePath": "MOSI/x.pkl"})
    assert misa["pretrained"] == "bert-base-uncased" and misa["featurePath"] == "MOSI/x.pkl"
    dar = _args_at_run_start(monkeypatch, tmp_path, "dar", {"featurePath": "MOSI/x.pkl"})
    assert dar["pretrained"] == tiny_bert and dar["featurePath"] == str(tmp_path / "root" / "MOSI" / "x.pkl")


def _test_losses(model, tiny_bert, small_mosi_root, tmp_path, overrides):
    """``Loss`` of one untrained model's ``do_test`` on the 9 test samples, in batches of 9, 4 and 2."""
    import torch
    from torch.utils.data import DataLoader

    from dar_mmsa.runner import build_args, build_model, build_trainer, load_data

    args = build_args(model, "mosi", data_root=small_mosi_root, pretrained=tiny_bert, device="cpu",
                      save_path=tmp_path / "m.pth", overrides=overrides)
    test_set = load_data(args)["test"].dataset
    assert len(test_set) == 9
    torch.manual_seed(0)
    net, trainer = build_model(args), build_trainer(args)
    net.eval()
    return [trainer.do_test(net, DataLoader(test_set, batch_size=b, shuffle=False), mode="TEST")["Loss"]
            for b in (9, 4, 2)]


@pytest.mark.parametrize("model", ["misa", "self_mm", "mmim"])
def test_sample_weighted_loss_option(model, tiny_bert, small_mosi_root, tmp_path):
    """MMSA's trainers average batch means; with ``sample_weighted_loss`` the Loss is the sample-weighted mean."""
    losses = _test_losses(model, tiny_bert, small_mosi_root, tmp_path, {"sample_weighted_loss": True})
    assert losses[1] == pytest.approx(losses[0], abs=1.01e-4) and losses[2] == pytest.approx(losses[0], abs=1.01e-4)


def test_stock_loss_by_default(tiny_bert, small_mosi_root, tmp_path):
    """Without the option, MMSA's own Loss: the mean of batch means, which moves with the batch size."""
    losses = _test_losses("misa", tiny_bert, small_mosi_root, tmp_path, None)
    assert losses[1] != pytest.approx(losses[0], abs=1.01e-4) or losses[2] != pytest.approx(losses[0], abs=1.01e-4)


def test_build_args_override_of_pretrained_beats_env(monkeypatch, tmp_path, tiny_bert, small_mosi_root):
    from dar_mmsa.runner import build_args

    monkeypatch.setenv("DAR_MMSA_PRETRAINED", str(tmp_path / "no-such-bert"))
    features = str(tmp_path / "elsewhere.pkl")
    args = build_args("dar", "mosi", data_root=small_mosi_root, overrides={"pretrained": tiny_bert,
                                                                           "featurePath": features})
    assert args["pretrained"] == tiny_bert and args["featurePath"] == features
