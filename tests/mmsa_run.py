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


# ----------------------------------------------------------------------------- stock MMSA against the plugin
def write_tiny_features(path, *, seed=0, sizes=(20, 7, 9), text_len=12, frames=(16, 14), dims=(5, 20),
                        noise_past_lengths=True, aligned=False, sims=False):
    """An MMSA-format pickle written here, not by the project's generator: BERT ids in the tiny BERT's
    vocabulary, labels in [-3, 3], random lengths with (optionally) noise at t >= length. With
    ``aligned``, audio and vision have ``text_len`` steps (else more: MISA packs them with the text's
    lengths, as real files allow). With ``sims``, CH-SIMS's labels: in [-1, 1] on the 0.2 grid, plus
    the unimodal ``regression_labels_T/A/V`` that MMSA's loader reads for ``sims``."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(seed)
    label_limit = 1 if sims else 3
    t_audio, t_vision = (text_len, text_len) if aligned else frames
    data = {}
    for split, n in zip(("train", "valid", "test"), sizes):
        ids = rng.integers(104, 1000, size=(n, text_len)).astype(np.float32)
        words = rng.integers(3, text_len - 1, size=n)
        mask = (np.arange(text_len)[None, :] < words[:, None] + 2).astype(np.float32)
        ids[:, 0], ids[np.arange(n), words + 1] = 101, 102
        ids *= mask
        text_bert = np.stack([ids, mask, np.zeros_like(mask)], axis=1)
        part = {"text_bert": text_bert, "raw_text": np.array([f"s{i}" for i in range(n)]),
                "id": np.array([f"{split}_{i}" for i in range(n)]),
                "regression_labels": np.round(rng.uniform(-label_limit, label_limit, n) / 0.2) * 0.2,
                "text": rng.standard_normal((n, text_len, 768)).astype(np.float32)}
        for name, steps, dim in (("audio", t_audio, dims[0]), ("vision", t_vision, dims[1])):
            values = rng.standard_normal((n, steps, dim)).astype(np.float32)
            lengths = rng.integers(1, steps + 1, size=n)
            if not noise_past_lengths:
                values[np.arange(steps)[None, :] >= lengths[:, None]] = 0
            part[name], part[f"{name}_lengths"] = values, lengths
        if sims:
            for m in "TAV":
                part[f"regression_labels_{m}"] = (np.round(rng.uniform(-1, 1, n) / 0.2) * 0.2).astype(np.float32)
        part["regression_labels"] = part["regression_labels"].astype(np.float32)
        data[split] = part
    with open(path, "wb") as f:
        pickle.dump(data, f)
    return path


def stock_crash_shims():
    """The only changes the stock runs get: fixes of stock MMSA 2.2.1's crashes here, the least each
    needs. ``MMSA_run`` calls ``torch.cuda.set_device`` on the CPU device; MMIM passes ``verbose=`` to
    ``ReduceLROnPlateau``, which current torch rejects."""
    import importlib

    import torch

    real = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None if torch.device(device).type == "cpu" else real(device)

    class ReduceLROnPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
        def __init__(self, optimizer, *args, verbose=None, **kwargs):
            super().__init__(optimizer, *args, **kwargs)

    importlib.import_module("MMSA.trains.singleTask.MMIM").ReduceLROnPlateau = ReduceLROnPlateau


def run_mmsa_models(models, features, bert, out, *, with_plugin, dataset="mosi", extra=None):
    """``MMSA_run(model, dataset, config={...})`` with MMSA's default config for each model, seed 1111, on
    CPU; with ``with_plugin``, after ``import dar_mmsa``. Outputs go under ``out``."""
    import torch

    torch.set_num_threads(1)
    stock_crash_shims()
    if with_plugin:
        import dar_mmsa  # noqa: F401
    import MMSA

    for model in models:
        config = {"featurePath": str(features), "pretrained": str(bert), "batch_size": 8, "early_stop": 1}
        config.update((extra or {}).get(model, {}))
        MMSA.MMSA_run(model, dataset, config=config, seeds=[1111], gpu_ids=[], num_workers=0, verbose_level=0,
                      model_save_dir=f"{out}/models", res_save_dir=f"{out}/results", log_dir=f"{out}/logs")


if __name__ == "__main__":  # python tests/mmsa_run.py stock|plugin FEATURES BERT OUT DATASET MODEL...
    import sys

    run_mmsa_models(sys.argv[6:], sys.argv[2], sys.argv[3], sys.argv[4], with_plugin=sys.argv[1] == "plugin",
                    dataset=sys.argv[5])
