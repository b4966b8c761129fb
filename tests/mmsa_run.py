"""Run one of our models through MMSA's machinery on CPU: a short training, or ``MMSA_run`` itself."""
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


def validation_losses(name, trainer_class, run_kwargs, overrides):
    """Train ``name`` briefly through ``dar_mmsa.runner`` (seeded) and return its validation loss per epoch."""
    import torch

    from dar_mmsa.runner import build_args, build_model, build_trainer, load_data

    torch.manual_seed(0)
    args = build_args(name, "mosi", overrides=overrides, **run_kwargs)
    loaders = load_data(args)
    model, trainer = build_model(args), build_trainer(args)
    assert isinstance(trainer, trainer_class)
    history = trainer.do_train(model, loaders, return_epoch_results=True)
    return [epoch["Loss"] for epoch in history["valid"]]
