"""The DAR paper's experiments in the harness: Table 2 (ablation) and Table 3 (training missing
rate) as training variants in the results store, their tables and the CLI."""
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from dar_mmsa.benchmark import run
from dar_mmsa.benchmark.experiments import EXPERIMENTS, TRAIN_RATES
from dar_mmsa.benchmark.store import ResultStore
from dar_mmsa.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import run_benchmark  # noqa: E402

SMALL = dict(dim=16, aligned_len=8, encoder_heads=2, encoder_dim_head=8, encoder_mlp_dim=32, fusion_layers=1,
             fusion_heads=2, club_hidden=8, max_epochs=1, batch_size=16, club_warmup_steps=0)
RATES = [0.0, 0.5]


@pytest.fixture(scope="module")
def ablation(tmp_path_factory, small_mosi_root, tiny_bert):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("ablation")
    kwargs = dict(experiment="ablation", datasets=["mosi"], seeds=[1111], rates=RATES, device="cpu",
                  progress=False, overrides=SMALL, data_root=small_mosi_root, pretrained=tiny_bert, out=out,
                  name="t", with_reported=True)
    return run(**kwargs), kwargs


def test_each_ablation_variant_is_its_own_stored_training(ablation):
    result, _ = ablation
    assert (result.trained, result.evaluated, result.failures) == (6, 12, [])
    assert "table1.csv" not in {f.name for f in result.files}
    trainings = ResultStore(result.root).trainings()
    assert len({t["config_hash"] for t in trainings}) == 6
    switches = {tuple(sorted(k for k in ("use_sim_loss", "use_diff_loss", "use_recon_loss", "use_boot_loss")
                             if not t["args"][k])) for t in trainings}
    assert switches == {(), ("use_sim_loss",), ("use_diff_loss",), ("use_diff_loss", "use_sim_loss"),
                        ("use_recon_loss",), ("use_boot_loss",)}
    for t in trainings:  # the loss terms of every epoch are stored with the run
        (epoch,) = t["epochs"]["train"]
        assert {"task", "boot", "sim_com", "sim_spec", "diff", "re", "recon", "total"} <= set(epoch["terms"])
        assert set(t["epochs"]["valid"][0]["terms"]) >= {"task", "diff", "total"}


def test_ablation_table_in_the_papers_layout(ablation):
    result, _ = ablation
    table = pd.read_csv(result.root / "table2_ablation.csv")
    assert list(table["display_name"]) == [v.label for v in EXPERIMENTS["ablation"].variants]
    assert list(table["display_name"])[-1] == "full" and (table["n_conditions"] == 2).all()
    per_rate = pd.read_csv(result.root / "table2_ablation_per_rate.csv")
    full = per_rate[per_rate["display_name"] == "full"]
    assert table.iloc[-1]["MAE"] == pytest.approx(full["MAE_mean"].mean())
    tex = (result.root / "table2_ablation.tex").read_text()
    assert r"w/o $\mathcal{L}_{sim}$ \& $\mathcal{L}_{diff}$ &" in tex
    assert "Reported in the DAR paper" in tex and "full (reported) & 34.47 & 38.65" in tex
    assert "Synthetic data" in tex
    assert "w/o L_boot" in result.summary and "MAE@0.5" in result.summary


def test_rerun_trains_nothing_and_full_reuses_a_table1_training(ablation):
    result, kwargs = ablation
    again = run(**kwargs)
    assert (again.trained, again.evaluated) == (0, 0)
    table1 = run(**dict(kwargs, experiment="table1", models=["dar"]))  # the defaults = Table 2's "full"
    assert (table1.trained, table1.evaluated) == (0, 0)
    assert (result.root / "table1.csv").is_file()


def test_report_only_rebuilds_the_experiment_tables_byte_for_byte(ablation):
    from dar_mmsa.benchmark import report

    result, kwargs = ablation
    run(**kwargs)  # the ablation's manifest; the previous test left Table 1's report.json beside it
    tables = {p.name: p.read_bytes() for p in result.root.iterdir() if p.suffix in (".csv", ".tex")}
    assert {"table2_ablation.csv", "table2_ablation.tex", "table2_ablation_per_rate.csv", "table1.csv"} <= set(tables)
    for name in tables:
        (result.root / name).unlink()
    rebuilt = report(result.root)
    assert {p.name: p.read_bytes() for p in result.root.iterdir() if p.suffix in (".csv", ".tex")} == tables
    assert "w/o L_boot" in rebuilt.summary and "Table 1" in rebuilt.summary


def test_variants_select_part_of_a_table_from_the_same_store(ablation):
    result, kwargs = ablation
    part = run(**dict(kwargs, variants=["full", "wo-diff"]))  # the experiment's order, not the given one
    assert (part.trained, part.evaluated) == (0, 0)
    table = pd.read_csv(part.root / "table2_ablation.csv")
    assert list(table["display_name"]) == ["w/o L_diff", "full"]
    whole = pd.read_csv(result.root / "table2_ablation_per_rate.csv")
    assert table.iloc[1]["MAE"] == pytest.approx(whole[whole["display_name"] == "full"]["MAE_mean"].mean())
    with pytest.raises(ConfigError, match="--variants k0.2: not a variant of --experiment ablation; choose from wo-sim"):
        run(**dict(kwargs, variants=["k0.2"]))
    with pytest.raises(ConfigError, match="Table 1 has none"):
        run(**dict(kwargs, experiment="table1", variants=["full"]))


def test_experiments_refuse_models_without_their_switches(small_mosi_root, tiny_bert, tmp_path):
    with pytest.raises(ConfigError, match="use_sim_loss.*--models dar"):
        run(experiment="ablation", models=["misa"], seeds=[1111], rates=[0.0], data_root=small_mosi_root,
            pretrained=tiny_bert, out=tmp_path, device="cpu", progress=False)
    with pytest.raises(ConfigError, match="unknown experiment 'nope'"):
        run(experiment="nope", seeds=[1111], data_root=small_mosi_root, pretrained=tiny_bert, out=tmp_path)


def test_smoke_train_rate_from_the_command_line(small_mosi_root, tiny_bert, tmp_path, capsys, monkeypatch):
    for key in ("DAR_MMSA_DATA_ROOT", "DAR_MMSA_PRETRAINED"):
        monkeypatch.delenv(key, raising=False)
    small = [f"{k}={v}" for k, v in SMALL.items() if k not in ("max_epochs", "batch_size")]
    code = run_benchmark.main(["--smoke", "--experiment", "train-rate", "--seeds", "1111", "--rates", "0.0", "0.9",
                               "--set", *small, "--out", str(tmp_path), "--no-progress", "--device", "cpu",
                               "--with-reported", "--data-root", small_mosi_root, "--pretrained", tiny_bert])
    assert code == 0, capsys.readouterr().err[-2000:]
    root = tmp_path / "synthetic-smoke"
    table = pd.read_csv(root / "table3_train_rate.csv")
    assert list(table["display_name"]) == [f"k = {k:.1f}" for k in TRAIN_RATES]
    rates = {t["args"]["train_missing_rate"] for t in ResultStore(root).trainings()}
    assert rates == set(TRAIN_RATES)
    tex = (root / "table3_train_rate.tex").read_text()
    assert "0.8 (reported) & 24.56" in tex and "\n$k$ & Acc-7 & " in tex and r"\multirow" not in tex
    assert (root / "tables.tex").read_text().count(r"\input{") == len(list(root.glob("*.tex"))) - 1
    assert "Training missing rate" in capsys.readouterr().out
