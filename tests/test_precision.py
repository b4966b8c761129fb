"""--precision (autocast in our trainers' loop), --eval-batch-size and the speed options' checks."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dar_mmsa.benchmark.grid import Condition, training_config_hash
from dar_mmsa.errors import ConfigError
from dar_mmsa.training.base import Trainer
from dar_mmsa.training.precision import Precision, check_precision

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import run_benchmark  # noqa: E402


class Probe(nn.Module):
    """Records the dtype its linear layer computes in, per mode."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.seen = {}

    def forward(self, text, audio, vision):
        out = self.linear(audio.mean(1))
        self.seen["train" if self.training else "eval"] = out.dtype
        return out


def batches(n=3, b=4):
    g = torch.Generator().manual_seed(0)
    text = torch.zeros(b, 3, 6)
    text[:, 0, :4], text[:, 1, :4] = 500.0, 1.0
    return [{"text": text, "audio": torch.randn(b, 5, 4, generator=g), "vision": torch.randn(b, 5, 2, generator=g),
             "labels": {"M": torch.randn(b, generator=g)}, "index": torch.arange(i * b, (i + 1) * b)}
            for i in range(n)]


def trainer(tmp_path, precision):
    args = {"dataset_name": "mosi", "device": "cpu", "max_epochs": 2, "early_stop": 5, "model_name": "probe",
            "model_save_path": tmp_path / "probe.pth", "seed": 1, "learning_rate": 1e-2}
    if precision != "fp32":
        args["precision"] = precision
    return Trainer(args)


@pytest.mark.parametrize("precision,dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_training_and_evaluation_run_under_the_precision(tmp_path, precision, dtype):
    torch.manual_seed(0)
    model, run = Probe(), trainer(tmp_path, precision)
    before = model.linear.weight.detach().clone()
    history = run.do_train(model, {"train": batches(), "valid": batches(2)}, return_epoch_results=True)
    assert model.seen == {"train": dtype, "eval": dtype}
    assert model.linear.weight.dtype == torch.float32, "parameters stay float32"
    assert not torch.equal(model.linear.weight, before), "the optimizer stepped"
    assert all(np.isfinite(h["Loss"]) for h in history["train"] + history["valid"])


def test_bf16_changes_the_numbers_and_fp32_is_unchanged_by_the_option(tmp_path):
    def losses(precision):
        torch.manual_seed(0)
        return trainer(tmp_path, precision).do_train(Probe(), {"train": batches(), "valid": batches(2)},
                                                     return_epoch_results=True)["train"]
    fp32, bf16 = losses("fp32"), losses("bf16")
    assert fp32 == losses("fp32")
    assert [h["Loss"] for h in fp32] != [h["Loss"] for h in bf16]
    assert [h["Loss"] for h in fp32] == pytest.approx([h["Loss"] for h in bf16], rel=0.05)


def test_precision_errors_are_one_line():
    assert check_precision(None, "cpu") == "fp32"
    assert check_precision("BF16", "cpu") == "bf16"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device.*use --precision bf16 or fp32"):
        check_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        check_precision("fp8", "cpu")


def test_cli_fp16_on_cpu_is_one_error_line(tmp_path, capsys):
    code = run_benchmark.main(["--smoke", "--no-progress", "--device", "cpu", "--precision", "fp16",
                               "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["error: precision fp16 needs a CUDA device (device is cpu): "
                                 "use --precision bf16 or fp32"]
    assert not any(tmp_path.iterdir()), "nothing written"


@pytest.mark.parametrize("flag,value", [("--eval-batch-size", "0"), ("--loader-workers", "-1")])
def test_cli_bad_speed_values_are_one_error_line(tmp_path, capsys, flag, value):
    assert run_benchmark.main(["--smoke", "--no-progress", "--device", "cpu", flag, value, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and flag.strip("-").replace("-", " ") in err[0]


def test_precision_is_in_the_config_hash_only_when_not_fp32(tiny_bert, synthetic_root, tmp_path):
    from dar_mmsa import runner
    from dar_mmsa.benchmark.plan import MMSA_CORRECTIONS, Settings, build_args
    from dar_mmsa.benchmark.store import ResultStore

    def settings(precision):
        s = Settings(("dar", "misa"), ("mosi",), (1,), (), torch.device("cpu"), None, {}, ResultStore(tmp_path))
        s.data_root, s.pretrained, s.precision = Path(synthetic_root), tiny_bert, precision
        return s

    for model in ("dar", "misa"):
        plain = runner.build_args(model, "mosi", data_root=synthetic_root, pretrained=tiny_bert, device="cpu", seed=1)
        if model == "misa":  # the harness records its corrections of MMSA's behaviour (off) in the config
            plain.update(MMSA_CORRECTIONS)
        fp32 = build_args(settings("fp32"), model, "mosi", 1)
        bf16 = build_args(settings("bf16"), model, "mosi", 1)
        assert "precision" not in fp32 and training_config_hash(fp32) == training_config_hash(plain)
        if model == "dar":
            assert bf16["precision"] == "bf16" and training_config_hash(bf16) != training_config_hash(fp32)
        else:  # MMSA's trainers do not autocast: same training, same hash
            assert "precision" not in bf16 and training_config_hash(bf16) == training_config_hash(fp32)


def test_evaluation_does_not_depend_on_the_batch_size(tiny_bert, small_mosi_root, tmp_path):
    from dar_mmsa import runner
    from dar_mmsa.benchmark.evaluate import evaluate

    args = runner.build_args("dar", "mosi", data_root=small_mosi_root, pretrained=tiny_bert, device="cpu", seed=1,
                             save_path=tmp_path / "dar.pth")
    loaders = runner.load_data(args)
    torch.manual_seed(0)
    model = runner.build_model(args).eval()
    trainer = runner.build_trainer(args)
    condition = Condition.intra(0.5)
    results = [evaluate(model, trainer, loaders["test"].dataset, condition, 1, batch_size=size, device="cpu").metrics
               for size in (2, 9)]
    assert results[0].keys() == results[1].keys()
    for key in results[0]:
        assert results[0][key] == pytest.approx(results[1][key], abs=1e-4), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp16_on_cuda_scales_the_loss_and_trains(tmp_path):
    torch.manual_seed(0)
    model = Probe().cuda()
    args = {"dataset_name": "mosi", "device": "cuda", "max_epochs": 2, "early_stop": 5, "model_name": "probe",
            "model_save_path": tmp_path / "probe.pth", "seed": 1, "precision": "fp16"}
    run = Trainer(args)
    assert run.precision.scaler is not None
    history = run.do_train(model, {"train": batches(), "valid": batches(2)}, return_epoch_results=True)
    assert model.seen == {"train": torch.float16, "eval": torch.float16}
    assert all(np.isfinite(h["Loss"]) for h in history["train"])
    assert isinstance(Precision("bf16", "cuda").dtype, torch.dtype)
