"""Training/evaluation precision of our trainers: fp32 (default), bf16 or fp16 autocast.

``args["precision"]`` selects it (``run_benchmark.py --precision``; the key is absent for fp32, so
fp32 runs keep their training config hash). Under bf16/fp16 the forward passes and losses of
``Trainer.train_step``/``eval_step`` run inside ``torch.autocast`` on the trainer's device; the
backward pass runs outside it. fp16 needs CUDA and a ``GradScaler`` (scaled loss, gradients
unscaled before clipping and before the step, steps with inf/NaN gradients skipped); bf16 needs
no scaler and runs on CPU and on GPUs with bf16 support. MMSA's own trainers are not touched:
its models always train in fp32.
"""
from __future__ import annotations

import contextlib

import torch

from ..errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision, device, *, on_device: bool = True) -> str:
    """The precision name, or one clear ConfigError when it cannot run on ``device``. ``on_device``
    False: this process does not run on that device (a Ray driver), so the GPU itself is not asked
    (the executor checks it on the nodes' GPUs, and every trainer again)."""
    precision = str(precision or "fp32").lower()
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}': use one of {', '.join(PRECISIONS)}")
    kind = torch.device(device).type
    if precision == "fp16" and kind != "cuda":
        raise ConfigError(f"precision fp16 needs a CUDA device (device is {kind}): use --precision bf16 or fp32")
    if precision == "bf16" and kind == "cuda" and on_device and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU has no bf16 support: use --precision fp16 or fp32")
    return precision


class Precision:
    """Autocast context, loss scaling and optimizer steps for one trainer."""

    def __init__(self, precision, device):
        self.name = check_precision(precision, device)
        self.device_type = torch.device(device).type
        self.dtype = _DTYPES.get(self.name)
        self.scaler = torch.amp.GradScaler("cuda") if self.name == "fp16" else None
        self._stepped = False

    def autocast(self):
        """The forward passes of a step (a no-op for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        outside = torch.autocast(self.device_type, enabled=False) if self.dtype else contextlib.nullcontext()
        with outside:
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer) -> None:
        """Gradients back to their true scale (before clipping); a no-op without a scaler."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self._stepped = True

    def update(self) -> None:
        """After a training batch: adapt the loss scale if an optimizer stepped since the last update."""
        if self.scaler is not None and self._stepped:
            self.scaler.update()
            self._stepped = False
