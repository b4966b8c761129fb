"""Importing dar_mmsa registers our models and changes nothing else (issue 21).

MMSA's own models run through MMSA's entry points twice on a tiny pickle with partial last batches and
noise past the lengths, and on a tiny CH-SIMS pickle: stock MMSA 2.2.1 in a subprocess (with only the
fixes of its crashes on CPU here) and the same call after ``import dar_mmsa``; metrics, ``Loss`` and
saved weights must be identical. Each of our models then runs through every MMSA entry point: ``MMSA_run`` with no config
file, ``custom_feature`` while ``featurePath`` points nowhere, ``is_tune=True``, and ``MMSA_test`` on
one unpadded video.
"""
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mmsa_run import write_tiny_features

TESTS = Path(__file__).resolve().parent
MMSA_MODELS = ("misa", "self_mm", "mmim")
# one epoch, small batches; ALMT's schedule length is max_epochs, its cap epoch_cap
SHORT = {"max_epochs": 1, "epoch_cap": 1, "batch_size": 8}


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS)]), OMP_NUM_THREADS="1")


def _run_mmsa(features, bert, root, dataset="mosi", models=MMSA_MODELS):
    """Stock MMSA and MMSA with the plugin, side by side in two processes: {kind: output folder}."""
    procs = {kind: subprocess.Popen([sys.executable, str(TESTS / "mmsa_run.py"), kind, str(features), bert,
                                     str(root / kind), dataset, *models], env=_env(), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for kind in ("stock", "plugin")}
    for kind, proc in procs.items():
        _, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, (kind, stderr[-3000:])
    return {kind: root / kind for kind in procs}


def _numbers(cell):
    """MMSA's CSV cell '(mean, std)': numpy 2 writes np.float64(...) around them, which stock MMSA keeps."""
    return [float(x) for x in re.findall(r"-?\d+\.?\d*(?:e-?\d+)?", re.sub(r"np\.float64", "", str(cell)))]


def _assert_identical(outputs, dataset, models):
    """Stock MMSA's and the plugin's result rows (``Loss`` among them) and saved weights, model by model."""
    rows = {name: pd.read_csv(root / "results" / "normal" / f"{dataset}.csv").set_index("Model")
            for name, root in outputs.items()}
    assert list(rows["stock"].index) == list(models) == list(rows["plugin"].index)
    assert "Loss" in rows["stock"].columns
    for model in models:
        for column in rows["stock"].columns:
            assert _numbers(rows["plugin"].loc[model, column]) == _numbers(rows["stock"].loc[model, column]), \
                (model, column)
        weights = {name: torch.load(root / "models" / f"{model}-{dataset}.pth", map_location="cpu")
                   for name, root in outputs.items()}
        assert weights["stock"].keys() == weights["plugin"].keys()
        assert all(torch.equal(weights["stock"][k], weights["plugin"][k]) for k in weights["stock"]), model
    return rows


def test_import_leaves_the_environment_unchanged():
    code = ("import os, torch, transformers, MMSA, MMSA.run\n"
            "before = dict(os.environ)\n"
            "import dar_mmsa\n"
            "print(dict(os.environ) == before, 'HF_HUB_OFFLINE' in os.environ)")
    env = {k: v for k, v in _env().items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "False"]


def test_mmsa_models_give_stock_mmsa_results(tmp_path, tiny_bert):
    features = write_tiny_features(tmp_path / "noisy.pkl", noise_past_lengths=True)
    outputs = _run_mmsa(features, tiny_bert, tmp_path)
    _assert_identical(outputs, "mosi", MMSA_MODELS)
    stock = outputs["stock"]
    # load_run takes a .pth MMSA_run saved for MMSA's model too, with the config it was trained with
    import MMSA

    import dar_mmsa

    config = dict(MMSA.get_config_regression("misa", "mosi"), pretrained=tiny_bert, batch_size=8)
    frame = dar_mmsa.load_run(stock / "models" / "misa-mosi.pth", config=config).predict_features(str(features))
    assert len(frame) == 9 and np.isfinite(frame["prediction"]).all() and (frame["label"] != 0).any()


def test_mmsa_models_give_stock_mmsa_results_on_ch_sims(tmp_path):
    """MMSA's ``sims`` (CH-SIMS's sizes: text 39, audio 400 x 33, vision 55 x 709; labels in [-1, 1] with
    unimodal labels), a tiny Chinese BERT: Self-MM and MISA, stock against the plugin, MMSA's SIMS metrics."""
    from dar_mmsa.text_encoder import write_tiny_bert

    bert = str(write_tiny_bert(tmp_path / "tiny-bert-chinese", num_layers=1, language="cn"))
    features = write_tiny_features(tmp_path / "unaligned_39.pkl", seed=3, sizes=(20, 7, 9), text_len=39,
                                   frames=(400, 55), dims=(33, 709), noise_past_lengths=True, sims=True)
    models = ("self_mm", "misa")
    rows = _assert_identical(_run_mmsa(features, bert, tmp_path, dataset="sims", models=models), "sims", models)
    assert {"Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr"} <= set(rows["stock"].columns)
    assert "Non0_acc_2" not in rows["stock"].columns


# ----------------------------------------------------------------------------- our models, every entry point
OURS = ("dar", "derl", "cenet", "tetfn", "almt", "lnln")
ALIGNED = {"tetfn"}  # reads aligned features, as MMSA configures it


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """Clean (zeros past the lengths) pickles with sizes unlike MOSI's: audio 7-d, vision 11-d."""
    root = tmp_path_factory.mktemp("tiny-features")
    return {aligned: write_tiny_features(root / f"{'aligned' if aligned else 'unaligned'}.pkl", seed=1,
                                         dims=(7, 11), noise_past_lengths=False, aligned=aligned)
            for aligned in (False, True)}


def _dirs(root):
    return dict(model_save_dir=str(root / "models"), res_save_dir=str(root / "results"), log_dir=str(root / "logs"))


@pytest.mark.parametrize("model", OURS)
def test_our_model_through_every_mmsa_entry_point(model, tmp_path, tiny_bert, tiny_files):
    import MMSA

    import dar_mmsa

    features = tiny_files[model in ALIGNED]
    # no config_file: MMSA's default config, our entry added; its featurePath points nowhere here
    defaults = MMSA.get_config_regression(model, "mosi")
    assert not Path(defaults["featurePath"]).exists()
    assert MMSA.get_config_regression("misa", "mosi") == MMSA.get_config_regression.__wrapped__("misa", "mosi")
    MMSA.MMSA_run(model, "mosi", config=dict(SHORT, pretrained=tiny_bert), custom_feature=str(features),
                  seeds=[1111], gpu_ids=[], num_workers=0, verbose_level=0, **_dirs(tmp_path))
    rows = pd.read_csv(tmp_path / "results" / "normal" / "mosi.csv")
    assert list(rows["Model"]) == [model]
    weights = tmp_path / "models" / f"{model}-mosi.pth"
    saved = json.loads(Path(str(weights) + ".args.json").read_text())
    assert saved["feature_dims"][1:] == [7, 11]  # the data's sizes, not MOSI's (5, 20)

    # MMSA_test on one video's unpadded features = the same video inside the padded test split
    with open(features, "rb") as f:
        test = pickle.load(f)["test"]
    i = int(np.argmin(test["audio_lengths"]))
    a_len, v_len = int(test["audio_lengths"][i]), int(test["vision_lengths"][i])
    video = {"text_bert": test["text_bert"][i], "text": test["text"][i],
             "audio": test["audio"][i] if model in ALIGNED else test["audio"][i, :a_len],
             "vision": test["vision"][i] if model in ALIGNED else test["vision"][i, :v_len]}
    video_file = tmp_path / "video.pkl"
    with open(video_file, "wb") as f:
        pickle.dump(video, f)
    score = MMSA.MMSA_test(dict(defaults, pretrained=tiny_bert), str(weights), str(video_file), gpu_id=-1)
    assert isinstance(score, np.floating) and np.isfinite(score)
    in_split = dar_mmsa.load_run(weights).predict_features(str(features), split="test")
    assert float(score) == pytest.approx(float(in_split["prediction"][i]), abs=1e-5)

    # tune mode: MMSA's default tune config, our entry (with its search space) added; two trials
    tuned = tmp_path / "tune"
    searched = {k: v for k, v in SHORT.items() if k != "batch_size"}  # batch_size may be a searched key
    MMSA.MMSA_run(model, "mosi", config=dict(searched, featurePath=str(features), pretrained=tiny_bert),
                  is_tune=True, tune_times=2, seeds=[1111], gpu_ids=[], num_workers=0, verbose_level=0,
                  **_dirs(tuned))
    trials = pd.read_csv(tuned / "results" / "tune" / f"mosi-{model}.csv")
    d_paras = MMSA.get_config_tune(model, "mosi")["d_paras"]
    assert d_paras and set(d_paras) <= set(trials.columns) and 1 <= len(trials) <= 2
    assert np.isfinite(trials["MAE"]).all()


def test_single_modality_files_are_checked_then_read(tmp_path, tiny_bert, tiny_files):
    """``feature_A`` replaces audio (and its lengths) as MMSA reads it; a broken ``feature_V`` is one line."""
    import MMSA

    from dar_mmsa.errors import DataError

    other_audio = write_tiny_features(tmp_path / "audio9.pkl", seed=2, dims=(9, 11), noise_past_lengths=False)
    MMSA.MMSA_run("dar", "mosi", config=dict(SHORT, pretrained=tiny_bert), custom_feature=str(tiny_files[False]),
                  feature_A=str(other_audio), seeds=[1111], gpu_ids=[], num_workers=0, verbose_level=0,
                  **_dirs(tmp_path))
    saved = json.loads((tmp_path / "models" / "dar-mosi.pth.args.json").read_text())
    assert saved["feature_dims"][1:] == [9, 11]
    with open(other_audio, "rb") as f:
        broken = pickle.load(f)
    del broken["valid"]["vision_lengths"]
    with open(tmp_path / "broken.pkl", "wb") as f:
        pickle.dump(broken, f)
    with pytest.raises(DataError, match=r"broken.pkl \[split 'valid', key 'vision_lengths'\]: missing key"):
        MMSA.MMSA_run("dar", "mosi", config=dict(SHORT, pretrained=tiny_bert), custom_feature=str(tiny_files[False]),
                      feature_V=str(tmp_path / "broken.pkl"), seeds=[1111], gpu_ids=[], num_workers=0,
                      verbose_level=0, **_dirs(tmp_path / "again"))
    with pytest.raises(DataError, match="custom_feature|not found"):
        MMSA.MMSA_run("dar", "mosi", config=dict(SHORT, pretrained=tiny_bert), custom_feature=str(tmp_path / "none"),
                      seeds=[1111], gpu_ids=[], num_workers=0, verbose_level=0, **_dirs(tmp_path / "none"))


def test_load_run_of_a_pth_without_its_arguments_asks_for_the_config(tmp_path):
    import dar_mmsa
    from dar_mmsa.errors import ConfigError

    weights = tmp_path / "dar-mosi.pth"
    torch.save({}, weights)
    with pytest.raises(ConfigError, match="pass config="):
        dar_mmsa.load_run(weights)
