"""MMSA's own API with the plugin imported: ``MMSA_run(config=...)`` overrides ``pretrained`` and
``featurePath`` with no ``DAR_MMSA_*`` variable set (issue 9, item 1)."""
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
    config[model]["commonParams"]["max_epochs"] = 1
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
                  config={"pretrained": tiny_bert, "featurePath": str(features), "max_epochs": 1},
                  seeds=[1111], gpu_ids=[], num_workers=0, verbose_level=0,
                  model_save_dir=str(tmp_path / "models"), res_save_dir=str(tmp_path / "results"),
                  log_dir=str(tmp_path / "logs"))
    rows = pd.read_csv(tmp_path / "results" / "normal" / "mosi.csv")
    assert list(rows["Model"]) == [model]


def test_config_override_of_pretrained_beats_env(monkeypatch, tmp_path, tiny_bert):
    """With DAR_MMSA_PRETRAINED set to a bad path, an explicit config= pretrained is used."""
    import MMSA.run as run

    from dar_mmsa import mmsa_hooks

    monkeypatch.setenv("DAR_MMSA_PRETRAINED", str(tmp_path / "no-such-bert"))
    seen = {}

    def fake_run(args, *rest, **kwargs):
        seen.update(args)
        raise KeyboardInterrupt  # stop before any data is read

    monkeypatch.setattr(run, "_run", mmsa_hooks._run_hook(fake_run))
    with pytest.raises(KeyboardInterrupt):
        run.MMSA_run("misa", "mosi", config={"pretrained": tiny_bert, "featurePath": str(tmp_path / "x.pkl")},
                     seeds=[1111], gpu_ids=[], verbose_level=0, model_save_dir=str(tmp_path / "m"),
                     res_save_dir=str(tmp_path / "r"), log_dir=str(tmp_path / "l"))
    assert seen["pretrained"] == tiny_bert
    assert seen["featurePath"] == str(tmp_path / "x.pkl")


@pytest.mark.parametrize("model", ["misa", "self_mm", "mmim"])
def test_mmsa_trainer_loss_does_not_depend_on_batch_size(model, tiny_bert, small_mosi_root, tmp_path):
    """MMSA's trainers average batch means; the stored Loss is the sample-weighted mean (item 7)."""
    import torch
    from torch.utils.data import DataLoader

    from dar_mmsa.runner import build_args, build_model, build_trainer, load_data

    args = build_args(model, "mosi", data_root=small_mosi_root, pretrained=tiny_bert, device="cpu",
                      save_path=tmp_path / "m.pth")
    test_set = load_data(args)["test"].dataset
    assert len(test_set) == 9
    torch.manual_seed(0)
    net, trainer = build_model(args), build_trainer(args)
    net.eval()
    losses = [trainer.do_test(net, DataLoader(test_set, batch_size=b, shuffle=False), mode="TEST")["Loss"]
              for b in (9, 4, 2)]
    assert losses[1] == pytest.approx(losses[0], abs=1.01e-4) and losses[2] == pytest.approx(losses[0], abs=1.01e-4)


def test_build_args_override_of_pretrained_beats_env(monkeypatch, tmp_path, tiny_bert, small_mosi_root):
    from dar_mmsa.runner import build_args

    monkeypatch.setenv("DAR_MMSA_PRETRAINED", str(tmp_path / "no-such-bert"))
    features = str(tmp_path / "elsewhere.pkl")
    args = build_args("dar", "mosi", data_root=small_mosi_root, overrides={"pretrained": tiny_bert,
                                                                           "featurePath": features})
    assert args["pretrained"] == tiny_bert and args["featurePath"] == features
