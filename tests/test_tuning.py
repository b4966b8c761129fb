"""--experiment tune: a 3-trial search per backend writes its four outputs, the same seeds give the
same trials, a killed search resumes without redoing finished trials, no test sample is ever read,
and tuned_config.json runs through MMSA_run and the harness (MISA, 16/8/9 samples, tiny BERT)."""
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from dar_mmsa.benchmark.tuning import serial, tune
from dar_mmsa.benchmark.tuning.search import LOWER_IS_BETTER
from dar_mmsa.benchmark.tuning.space import decode_params, distributions, encode, mmsa_tune_lists, search_space
from dar_mmsa.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import run_benchmark  # noqa: E402

OUTPUTS = ("tuning.csv", "tuned_config.json", "tuning.tex", "figures/tuning_progress.png")
SAME = ["model", "dataset", "state", "objective", "epochs", "valid_0", "valid_0.3", "valid_0.6", "valid_0.9"]


def _search(root, bert, out, name, **kwargs):
    return tune(["misa"], data_root=root, pretrained=bert, trials=3, epoch_cap=2, out=out, name=name, device="cpu",
                say=lambda message: None, **kwargs)


def _param_columns(frame):
    return sorted(c for c in frame if c.startswith("param_"))


@pytest.fixture(scope="module")
def serial_search(small_mosi_root, tiny_bert, tmp_path_factory):
    """One uninterrupted serial search, with every MMDataset split that was built or read recorded."""
    from MMSA.data_loader import MMDataset

    built, read = [], set()
    init, getitem = MMDataset.__init__, MMDataset.__getitem__

    def recording_init(self, args, mode="train"):
        built.append(mode)
        init(self, args, mode)

    def recording_getitem(self, index):
        read.add(self.mode)
        return getitem(self, index)

    MMDataset.__init__, MMDataset.__getitem__ = recording_init, recording_getitem
    try:
        result = _search(small_mosi_root, tiny_bert, tmp_path_factory.mktemp("tune"), "serial")
    finally:
        MMDataset.__init__, MMDataset.__getitem__ = init, getitem
    return result, built, read


def test_serial_search_writes_every_output(serial_search):
    result, _, _ = serial_search
    for name in OUTPUTS:
        assert (result.root / name).is_file(), name
    trials = pd.read_csv(result.root / "tuning.csv")
    assert len(trials) == 3 and set(trials["state"]) <= {"complete", "pruned"}
    assert (trials["epochs"] <= 2).all() and (trials["epochs"] >= 1).all()
    # the objective is the mean of the per-rate validation values
    rates = trials[["valid_0", "valid_0.3", "valid_0.6", "valid_0.9"]].mean(axis=1)
    assert (abs(rates - trials["objective"]) < 1e-5 * (1 + abs(rates))).all()  # tuning.csv keeps 6 digits
    complete = trials[trials["state"] == "complete"]
    best = complete.loc[complete["objective"].idxmin()]  # Loss: lower is better
    assert "Loss" in LOWER_IS_BETTER
    config = json.loads((result.root / "tuned_config.json").read_text())
    tuned = config["misa"]["datasetParams"]["mosi"]
    for column in _param_columns(trials):
        assert tuned[column[len("param_"):]] == pytest.approx(best[column]), column
    assert tuned["tuned_on"]["trials"] == 3 and tuned["tuned_on"]["epoch_cap"] == 2
    assert tuned["tuned_on"]["trial"] == best["trial"]
    tex = (result.root / "tuning.tex").read_text()
    assert r"\begin{table" in tex and r"learning\_rate" in tex and r"\toprule" in tex


def test_search_never_touches_the_test_split(serial_search):
    _, built, read = serial_search
    assert set(built) == {"train", "valid"} and read == {"train", "valid"}


def test_killed_search_resumes_and_matches_an_uninterrupted_one(serial_search, small_mosi_root, tiny_bert,
                                                                tmp_path, monkeypatch):
    reference = pd.read_csv(serial_search[0].root / "tuning.csv")
    real_run_trial, calls = serial.run_trial, []

    def killed_in_third_trial(settings, definition, params, checkpoint, on_epoch):
        calls.append(dict(params))

        def interrupt(epoch, objective, values):
            raise KeyboardInterrupt  # the process dies in the trial's first epoch

        return real_run_trial(settings, definition, params, checkpoint, interrupt if len(calls) == 3 else on_epoch)

    monkeypatch.setattr(serial, "run_trial", killed_in_third_trial)
    with pytest.raises(KeyboardInterrupt):
        _search(small_mosi_root, tiny_bert, tmp_path, "killed")
    assert len(calls) == 3
    assert not (tmp_path / "killed" / "tuning.csv").exists()
    calls.clear()
    monkeypatch.setattr(serial, "run_trial", lambda *a: (calls.append(dict(a[2])), real_run_trial(*a))[1])
    resumed = _search(small_mosi_root, tiny_bert, tmp_path, "killed")
    assert len(calls) == 1  # only the interrupted trial runs again, with its own parameters
    trials = pd.read_csv(resumed.root / "tuning.csv")
    # the same seeds give the same trials: parameters, per-rate values, epochs and states
    pd.testing.assert_frame_equal(trials[SAME + _param_columns(trials)], reference[SAME + _param_columns(reference)])
    assert list(trials["trial"]) == [0, 1, 3]  # trial 2 was the interrupted one


def test_ray_search_writes_every_output_with_the_same_proposals(serial_search, small_mosi_root, tiny_bert, tmp_path):
    pytest.importorskip("ray.tune")
    result = _search(small_mosi_root, tiny_bert, tmp_path, "ray", backend="ray", jobs=2, cpus_per_run=1)
    for name in OUTPUTS:
        assert (result.root / name).is_file(), name
    trials = pd.read_csv(result.root / "tuning.csv")
    reference = pd.read_csv(serial_search[0].root / "tuning.csv")
    assert len(trials) == 3 and set(trials["state"]) <= {"complete", "pruned"}
    columns = _param_columns(reference)

    def proposals(frame):
        return sorted(tuple(row) for row in frame[columns].itertuples(index=False))

    assert proposals(trials) == proposals(reference)  # one search definition: the same seeded sampler
    assert json.loads((result.root / "tuned_config.json").read_text())["misa"]["datasetParams"]["mosi"]


def test_tuned_config_runs_through_mmsa_run_and_the_harness(serial_search, small_mosi_root, tiny_bert, tmp_path):
    import MMSA

    from dar_mmsa.benchmark import run
    from dar_mmsa.benchmark.store import ResultStore

    tuned_file = serial_search[0].root / "tuned_config.json"
    tuned = json.loads(tuned_file.read_text())["misa"]["datasetParams"]["mosi"]
    config = json.loads(tuned_file.read_text())
    config["datasetCommonParams"]["dataset_root_dir"] = small_mosi_root
    config["misa"]["commonParams"]["max_epochs"] = 1
    config["misa"]["datasetParams"]["mosi"]["pretrained"] = tiny_bert
    mmsa_file = tmp_path / "mmsa.json"
    mmsa_file.write_text(json.dumps(config))
    MMSA.MMSA_run("misa", "mosi", config_file=str(mmsa_file), seeds=[1111], gpu_ids=[], num_workers=0,
                  verbose_level=0, model_save_dir=str(tmp_path / "models"), res_save_dir=str(tmp_path / "res"),
                  log_dir=str(tmp_path / "logs"))
    assert len(pd.read_csv(tmp_path / "res" / "normal" / "mosi.csv")) == 1

    result = run(models=["misa"], seeds=[1111], rates=[0.0], data_root=small_mosi_root, pretrained=tiny_bert,
                 device="cpu", out=tmp_path, name="table1", config_file=tuned_file, overrides={"max_epochs": 1},
                 progress=False, say=lambda message: None)
    (record,) = ResultStore(tmp_path / "table1").trainings()
    assert record["args"]["learning_rate"] == tuned["learning_rate"]
    assert record["args"]["hidden_size"] == tuned["hidden_size"]
    note = "Configs tuned on validation: MISA (MOSI) on 3 trials of at most 2 epochs"
    assert note in result.summary
    assert note in (tmp_path / "table1" / "table1.tex").read_text()


def test_search_spaces():
    import dar_mmsa  # noqa: F401

    dar = search_space("dar")
    assert dar["club_input"] == ["scale_free", "raw"] and dar["club_reduction"] == ["sum", "mean"]
    assert not {"lambda_decouple", "alpha", "beta", "train_missing_rate"} & set(dar)  # the paper fixes them
    assert search_space("misa") == mmsa_tune_lists("misa") and search_space("misa")["batch_size"] == [16, 32, 64]
    # a list candidate (TFR-Net's dst_feature_dim_nheads) travels as text and comes back as a list
    assert decode_params({"x": encode([30, 6])}) == {"x": [30, 6]}
    assert distributions({"x": [[30, 6], [32, 8]]})["x"].choices == ("json:[30, 6]", "json:[32, 8]")


def test_repeated_proposals_are_marked_in_tuning_csv_and_the_summary(tmp_path):
    from dar_mmsa.benchmark.tuning.api import summary_text
    from dar_mmsa.benchmark.tuning.outputs import trial_rows
    from dar_mmsa.benchmark.tuning.records import write_trial
    from dar_mmsa.benchmark.tuning.search import SearchDefinition
    from dar_mmsa.benchmark.tuning.trial import TrialOutcome

    lnln = SearchDefinition("lnln", "mosi", {"lr": [1, 2], "batch_size": [16, 32]}, 4, 2, (1111,))
    misa = SearchDefinition("misa", "mosi", {"lr": [1, 2]}, 4, 2, (1111,))
    proposals = [(lnln, [{"lr": 1, "batch_size": 16}, {"batch_size": 16, "lr": 2}, {"batch_size": 16, "lr": 1},
                         {"lr": 1, "batch_size": 16}]),
                 (misa, [{"lr": 1}, {"lr": 2}])]
    records = []
    for definition, params in proposals:
        for number, p in enumerate(params):
            outcome = TrialOutcome(p, "complete", {"0": 1.0}, 1.0, 2, [1.0, 1.0], 0.5)
            records.append(write_trial(tmp_path, definition, number, outcome, "serial"))
    frame = trial_rows(records)
    repeats = {(m, t): None if pd.isna(r) else int(r)
               for m, t, r in zip(frame["model"], frame["trial"], frame["repeats_trial"])}
    assert [repeats[("lnln", t)] for t in range(4)] == [None, None, 0, 0]  # key order does not matter
    assert [repeats[("misa", t)] for t in range(2)] == [None, None]
    text = summary_text(tmp_path, [lnln, misa])
    assert "lnln-mosi: 4 trials (4 complete, 0 pruned, 0 failed; 2 repeat an earlier trial's params)" in text
    assert "misa-mosi: 2 trials (2 complete, 0 pruned, 0 failed);" in text


@pytest.mark.parametrize("argv, message", [
    (["--trials", "3"], "--trials belongs to --experiment tune"),
    (["--experiment", "tune", "--seeds", "1"], "drop --seeds (use --tune-seeds)"),
    (["--experiment", "tune", "--tune-metric", "Acc"], "--tune-metric Acc is not a validation metric"),
    (["--experiment", "tune", "--trials", "0"], "--trials 0 must be a positive integer"),
    (["--experiment", "tune", "--tune-rates", "1.5"], "1.5"),
])
def test_cli_errors(argv, message, capsys, tmp_path):
    assert run_benchmark.main(argv + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_unknown_space_key_is_refused(monkeypatch, small_mosi_root, tiny_bert, tmp_path):
    from dar_mmsa.benchmark.tuning import api

    monkeypatch.setattr(api, "search_space", lambda model: {"no_such_key": [1, 2]})
    with pytest.raises(ConfigError, match="names no_such_key, which its config lacks"):  # ours: a declaration error
        tune(["dar"], data_root=small_mosi_root, pretrained=tiny_bert, out=tmp_path, device="cpu")
    with pytest.raises(ConfigError, match="'misa' has nothing to search"):  # MMSA's: keys it never reads are dropped
        _search(small_mosi_root, tiny_bert, tmp_path, "bad")
