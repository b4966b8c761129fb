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
