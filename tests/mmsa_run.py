"""Run one of our models through MMSA's own ``MMSA_run`` on CPU, from a generated config file."""
import json

import pandas as pd


def run_through_mmsa(name, data_root, tmp_path, *, common=None, dataset_params=None, dataset="mosi"):
    """``MMSA.MMSA_run(name, dataset, ...)`` once (seed 1111, no GPU) with ``name``'s defaults patched
    by ``common`` / ``dataset_params``; returns MMSA's result rows. Outputs go under ``tmp_path``."""
    import MMSA

    from dar_mmsa.config import build_config

    config = build_config()
    config["datasetCommonParams"]["dataset_root_dir"] = str(data_root)
    config[name]["commonParams"].update(common or {})
    config[name]["datasetParams"][dataset].update(dataset_params or {})
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    MMSA.MMSA_run(name, dataset, config_file=str(config_file), seeds=[1111], gpu_ids=[], num_workers=0,
                  verbose_level=0, model_save_dir=str(tmp_path / "models"),
                  res_save_dir=str(tmp_path / "results"), log_dir=str(tmp_path / "logs"))
    return pd.read_csv(tmp_path / "results" / "normal" / f"{dataset}.csv")
