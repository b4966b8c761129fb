"""CH-SIMS (MMSA's ``sims``): the synthetic file as MMSA's loader reads it, the validator's SIMS rules,
SIMS's metrics in Table 1, a tiny harness run and ``MMSA_run`` after ``import dar_mmsa``."""
import pickle
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from dar_mmsa.data import synthetic as S
from dar_mmsa.data.features import validate_features
from dar_mmsa.errors import DataError

SIMS_KEYS = {"text_bert", "text", "audio", "vision", "audio_lengths", "vision_lengths", "regression_labels",
             "classification_labels", "id", "raw_text", *(f"{kind}_labels_{m}" for kind in ("regression",
                                                                                            "classification")
                                                          for m in "TAV")}


def _load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    """A synthetic CH-SIMS of 8/8/8 samples and the tiny Chinese BERT whose vocabulary covers it."""
    from dar_mmsa.text_encoder import write_tiny_bert

    root = tmp_path_factory.mktemp("sims")
    written = S.write_synthetic(root, datasets=("sims",), scale=0.001, seed=0)
    bert = write_tiny_bert(tmp_path_factory.mktemp("bert-cn") / "tiny-bert-chinese", num_layers=1, language="cn")
    return SimpleNamespace(root=root, path=written[("sims", False)], written=written, bert=str(bert))


def test_synthetic_sims_is_mmsa_s_file(sims):
    assert list(sims.written) == [("sims", False)]  # MMSA ships no aligned SIMS file
    assert sims.path == sims.root / "SIMS" / "Processed" / "unaligned_39.pkl"
    data = _load(sims.path)
    assert list(data) == list(S.SPLITS)
    for split in S.SPLITS:
        d = data[split]
        assert set(d) == SIMS_KEYS
        n = len(d["id"])
        assert n == 8
        assert d["text_bert"].shape == (n, 3, 39) and d["text"].shape == (n, 39, 768)
        assert d["audio"].shape == (n, 400, 33) and d["vision"].shape == (n, 55, 709)
        for key in ("regression_labels", "regression_labels_T", "regression_labels_A", "regression_labels_V"):
            y = d[key]
            assert y.dtype == np.float32 and y.shape == (n,)
            assert y.min() >= -1 and y.max() <= 1
            assert np.allclose(y * 5, np.round(y * 5), atol=1e-5)  # SIMS's 0.2 grid
        assert (d["audio_lengths"] <= 400).all() and (d["vision_lengths"] <= 55).all()


def test_mmsa_loader_reads_synthetic_sims(sims):
    """Stock MMSA's MMDataset on the file: SIMS's unimodal labels and the data's feature sizes."""
    from MMSA.data_loader import MMDataset

    args = {"dataset_name": "sims", "featurePath": str(sims.path), "custom_feature": None, "feature_T": "",
            "feature_A": "", "feature_V": "", "use_bert": True, "need_data_aligned": False,
            "feature_dims": [0, 0, 0]}
    dataset = MMDataset(args, mode="test")
    assert args["feature_dims"] == [768, 33, 709]
    assert dataset.get_seq_len() == (39, 400, 55)
    assert set(dataset.labels) == {"M", "T", "A", "V"}
    sample = dataset[0]
    assert set(sample["labels"]) == {"M", "T", "A", "V"} and sample["text"].shape == (3, 39)


def test_chinese_text_tokenises_to_its_ids(sims):
    """raw_text is Chinese characters without spaces; the tiny Chinese BERT gives back text_bert's ids."""
    from dar_mmsa.text_encoder import check_tokenizer

    tokenizer = check_tokenizer(sims.bert)
    d = _load(sims.path)["train"]
    assert all(0x4E00 <= ord(ch) <= 0x9FFF for text in d["raw_text"] for ch in text)
    for ids, text in zip(d["text_bert"][:, 0].astype(int), d["raw_text"]):
        encoded = tokenizer(str(text), padding="max_length", max_length=39)["input_ids"]
        assert encoded == ids.tolist()


def test_sims_is_deterministic_and_leaves_mosi_streams_alone(tmp_path):
    a = S.write_synthetic(tmp_path / "a", datasets=("sims",), scale=0.001, seed=5)
    b = S.write_synthetic(tmp_path / "b", datasets=("sims",), scale=0.001, seed=5)
    assert a[("sims", False)].read_bytes() == b[("sims", False)].read_bytes()
    both = S.write_synthetic(tmp_path / "c", datasets=("mosi", "sims"), scale=0.001, seed=5)
    alone = S.write_synthetic(tmp_path / "d", datasets=("mosi",), scale=0.001, seed=5)
    assert both[("mosi", False)].read_bytes() == alone[("mosi", False)].read_bytes()


# ----------------------------------------------------------------------------- validator
def test_validator_accepts_sims_and_applies_its_label_range(sims):
    data = _load(sims.path)
    validate_features(data, sims.path, "sims", aligned=False)
    data["valid"]["regression_labels_V"] = data["valid"]["regression_labels_V"].copy()
    data["valid"]["regression_labels_V"][0] = 1.4  # fine on MOSI's scale, not on SIMS's
    with pytest.raises(DataError, match=r"split 'valid', key 'regression_labels_V'.*\[-1, 1\].*got \[.*1\.4\]"):
        validate_features(data, sims.path, "sims", aligned=False)
    data = _load(sims.path)
    data["train"]["regression_labels"] = data["train"]["regression_labels"] * 1.5 + 0.9
    with pytest.raises(DataError, match=r"key 'regression_labels'.*\[-1, 1\]"):
        validate_features(data, sims.path, "sims", aligned=False)


def test_validator_needs_sims_unimodal_labels(sims):
    data = _load(sims.path)
    del data["test"]["regression_labels_A"]
    with pytest.raises(DataError, match=r"split 'test', key 'regression_labels_A'.*missing key"):
        validate_features(data, sims.path, "sims", aligned=False)


def test_mosi_range_and_keys_unchanged(sims):
    """The same file read as MOSI: no unimodal labels needed, labels up to 3 allowed."""
    data = _load(sims.path)
    for split in S.SPLITS:
        for m in "TAV":
            del data[split][f"regression_labels_{m}"]
    data["train"]["regression_labels"] = data["train"]["regression_labels"] * 2.5
    validate_features(data, sims.path, "mosi", aligned=False)


# ----------------------------------------------------------------------------- metrics in the tables
def _record(dataset, model, seed, rate, metrics):
    return {"model": model, "display_name": model.upper(), "dataset": dataset, "seed": seed, "run_id": f"{model}-{seed}",
            "config_hash": "h", "condition": {"protocol": "intra", "key": f"intra-{rate}", "label": f"{rate}",
                                              "rate": rate, "rate_text": rate, "rate_audio": rate,
                                              "rate_vision": rate},
            "data": {"synthetic": True}, "wall_time_s": 1.0, "metrics": metrics}


def test_sims_table1_block_hand_computed():
    from dar_mmsa.benchmark import aggregate
    from dar_mmsa.report.latex import table1_latex

    sims_metrics = {"Mult_acc_2": 0.60, "Mult_acc_3": 0.50, "Mult_acc_5": 0.30, "F1_score": 0.58, "MAE": 0.40,
                    "Corr": 0.50}
    misa_metrics = dict(sims_metrics, Mult_acc_2=0.50, Mult_acc_3=0.60, F1_score=0.50)
    mosi_metrics = dict.fromkeys(aggregate.METRICS, 0.5)
    records = [_record("sims", "dar", 1, 0.0, sims_metrics),
               _record("sims", "dar", 1, 0.5, dict(sims_metrics, Mult_acc_2=0.70, MAE=0.50)),
               _record("sims", "misa", 1, 0.0, dict(misa_metrics)),
               _record("sims", "misa", 1, 0.5, dict(misa_metrics, Corr=float("nan"))),
               _record("mosi", "dar", 1, 0.0, mosi_metrics), _record("mosi", "dar", 1, 0.5, mosi_metrics)]
    frame = aggregate.records_frame(records)
    table = aggregate.table1(aggregate.per_condition(frame), ["dar", "misa"]).set_index(["dataset", "model"])
    assert table.loc[("sims", "dar"), "Mult_acc_2"] == pytest.approx(0.65)
    assert table.loc[("sims", "dar"), "MAE"] == pytest.approx(0.45)
    assert table.loc[("sims", "misa"), "Corr_n_nan"] == 1 and pd.isna(table.loc[("sims", "misa"), "Corr"])
    # another dataset's metric is empty, never counted as NaN
    assert table.loc[("sims", "dar"), "Non0_acc_2_n_nan"] == 0 and pd.isna(table.loc[("sims", "dar"), "Non0_acc_2"])
    assert table.loc[("mosi", "dar"), "Mult_acc_3_n_nan"] == 0
    notes = aggregate.nan_lines(frame)
    assert len(notes) == 1 and "Corr is NaN in 1 of 2 evaluations of misa/sims" in notes[0]
    tex = table1_latex(table.reset_index(), synthetic=True, conditions="missing rates 0.0, 0.5", seeds=[1])
    assert r"\multicolumn{6}{c}{MOSI} & \multicolumn{6}{c}{CH-SIMS}" in tex
    assert ("Method & Acc-7 & Acc-5 & Acc-2 & F1 & MAE$\\downarrow$ & Corr & Acc-5 & Acc-3 & Acc-2 & F1 & "
            "MAE$\\downarrow$ & Corr") in tex
    dar_row = next(line for line in tex.splitlines() if line.startswith("DAR &"))
    # after MOSI's six cells, CH-SIMS's, ranked against MISA (ties share a mark; MISA's Corr is NaN throughout
    # one condition, so undefined): Acc-5 30.00 = 30.00, Acc-3 50.00 < 60.00, Acc-2 65.00 > 50.00, F1 58.00 >
    # 50.00, MAE 0.450 > 0.400, Corr 0.500
    assert dar_row.split(" & ")[7:] == [r"\textbf{30.00}", r"\underline{50.00}", r"\textbf{65.00}",
                                        r"\textbf{58.00}", r"\underline{0.450}", r"\textbf{0.500} \\"]


def test_sims_figure_uses_sims_acc2(tmp_path):
    pytest.importorskip("matplotlib")
    from dar_mmsa.benchmark import aggregate
    from dar_mmsa.report.figures import figure4

    metrics = {"Mult_acc_2": 0.6, "Mult_acc_3": 0.5, "Mult_acc_5": 0.3, "F1_score": 0.6, "MAE": 0.4, "Corr": 0.5}
    frame = aggregate.records_frame([_record("sims", "dar", 1, r, metrics) for r in (0.0, 0.5)])
    files = figure4(aggregate.per_condition(frame), tmp_path / "figure4", synthetic=True)
    assert [f.suffix for f in files] == [".png", ".pdf"] and all(f.stat().st_size > 0 for f in files)


# ----------------------------------------------------------------------------- through the harness and MMSA
def test_tiny_harness_run_writes_a_sims_table1(sims, tmp_path):
    from dar_mmsa.benchmark import run
    from dar_mmsa.benchmark.store import ResultStore

    result = run(models=["dar", "self_mm"], datasets=["sims"], seeds=[1111], rates=[0.0, 0.5], device="cpu",
                 data_root=sims.root, pretrained=sims.bert, out=tmp_path, name="t", progress=False,
                 overrides={"max_epochs": 1, "batch_size": 8}, say=lambda message: None)
    assert (result.trained, result.evaluated, result.failures) == (2, 4, [])
    tex = (tmp_path / "t" / "table1.tex").read_text()
    assert "CH-SIMS" in tex and "Acc-3" in tex and "Acc-7" not in tex
    table = pd.read_csv(tmp_path / "t" / "table1.csv")
    assert list(table["model"]) == ["dar", "self_mm"] and table["Mult_acc_2"].notna().all()
    assert table["Non0_acc_2"].isna().all()
    assert "Acc-3" in result.summary
    store = ResultStore(tmp_path / "t")
    dar = next(store.training(r) for r in [p.name for p in store.runs.iterdir()] if r.startswith("dar-sims"))
    assert dar["args"]["train_missing_rate"] == 0.3  # DAR's SIMS k is in the run's config


def test_self_mm_on_sims_through_mmsa_run_after_import(sims, tmp_path):
    import MMSA

    import dar_mmsa  # noqa: F401

    MMSA.MMSA_run("self_mm", "sims", config={"featurePath": str(sims.path), "pretrained": sims.bert,
                                             "early_stop": 1, "batch_size": 8},
                  seeds=[1111], gpu_ids=[], num_workers=0, verbose_level=0, model_save_dir=str(tmp_path / "models"),
                  res_save_dir=str(tmp_path / "results"), log_dir=str(tmp_path / "logs"))
    rows = pd.read_csv(tmp_path / "results" / "normal" / "sims.csv")
    assert {"Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr"} <= set(rows.columns)


def test_tetfn_refuses_sims_in_one_line():
    from dar_mmsa.errors import ConfigError
    from dar_mmsa.runner import build_args

    with pytest.raises(ConfigError, match=r"^model 'tetfn' does not run on 'sims' \(it reads aligned features.*"
                                          r"choose mosi or mosei$"):
        build_args("tetfn", "sims")
