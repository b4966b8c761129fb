"""Grid planning: test conditions, per-modality rate parsing, training config identity."""
import pytest

from dar_mmsa.benchmark.grid import (Condition, TrainingRun, conditions_for, parse_rates_per_modality,
                                     training_config_hash)
from dar_mmsa.errors import ConfigError


def test_condition_keys_and_labels():
    assert (Condition.intra(0.3).key, Condition.intra(0.3).label) == ("intra-0.3", "0.3")
    assert Condition.intra(0).key == "intra-0.0"
    per = Condition.intra_per_modality({"text": 0.2, "vision": 0.5})
    assert (per.key, per.label, per.rate) == ("intra-l0.2-a0.0-v0.5", "l=0.2 a=0.0 v=0.5", None)
    assert Condition.subset((True, False, True)).key == "subset-LV" and Condition.drop(0.25).label == "drop 0.25"
    for c in (per, Condition.subset((False, True, False)), Condition.drop(0.7)):
        assert Condition.from_record(c.to_record()) == c
    with pytest.raises(ConfigError):
        Condition.subset((False, False, False))


def test_parse_rates_per_modality():
    assert parse_rates_per_modality(["l=0.2", "a=0.5", "v=0.5"]) == [{"text": 0.2, "audio": 0.5, "vision": 0.5}]
    assert parse_rates_per_modality(["l=0,a=0.9", "l=0.5", "v=0.5"]) == [{"text": 0.0, "audio": 0.9},
                                                                        {"text": 0.5, "vision": 0.5}]
    bad_tokens = ((["x=0.2"], "l=R"), (["l0.2"], "l=R"), (["a=2"], r"outside \[0, 1\]"), (["v=abc"], "not a number"))
    for bad, match in bad_tokens:
        with pytest.raises(ConfigError, match=match):
            parse_rates_per_modality(bad)


def test_conditions_of_each_protocol():
    assert [c.key for c in conditions_for("intra", rates=[0.0, 0.5, 0.5])] == ["intra-0.0", "intra-0.5"]
    inter = conditions_for("inter", drop_rates=[0.1, 0.7])
    assert [c.protocol for c in inter] == ["subset"] * 7 + ["drop"] * 2
    assert len(conditions_for("all")) == 10 + 7 + 7
    per = conditions_for("intra", rates_per_modality=[{"audio": 0.5}])
    assert [c.key for c in per] == ["intra-l0.0-a0.5-v0.0"]
    with pytest.raises(ConfigError, match="unknown protocol"):
        conditions_for("both")


def test_training_config_hash_ignores_paths_device_and_seed():
    args = {"model_name": "misa", "learning_rate": 1e-4, "featurePath": "/a/MOSI/x.pkl", "pretrained": "/bert",
            "device": "cpu", "seed": 1111, "model_save_path": "/tmp/m.pth"}
    moved = dict(args, featurePath="/b/MOSI/x.pkl", pretrained="/other", device="cuda:0", seed=1112,
                 model_save_path="/x.pth")
    assert training_config_hash(args) == training_config_hash(moved)
    assert training_config_hash(args) != training_config_hash(dict(args, learning_rate=1e-3))
    run = TrainingRun("misa", "mosi", 1111, training_config_hash(args))
    assert run.run_id == f"misa-mosi-1111-{training_config_hash(args)[:12]}" and run.title == "misa/mosi/seed 1111"
