"""``--deterministic``: what torch can make repeatable, set in the process that trains.

* ``torch.use_deterministic_algorithms(True, warn_only=True)``: every op that has a deterministic
  kernel uses it (on CUDA: index_add/scatter and embedding backward without atomic adds, cuBLAS with
  a fixed workspace, ``CUBLAS_WORKSPACE_CONFIG``: ``:4096:8`` unless already set, e.g. to ``:4096:2`` by
  importing MMSA); an op that has none (e.g. CUDA's adaptive
  average pooling backward, which DAR's alignment uses) warns in the run's log and stays as it is.
  ``warn_only``: such a run still trains instead of stopping.
* cuDNN: deterministic algorithms, no autotuning (``benchmark``), no TF32.
* matmuls: no TF32 (``allow_tf32`` off, float32 matmul precision "highest"); on Ampere and later
  both default to TF32 for cuDNN convolutions/RNNs, which changes the numbers.

What this cannot give (docs/benchmark.md, "Determinism"): the same numbers on another GPU type,
driver, CUDA/cuDNN or torch version (kernels and their reduction orders differ), or between CPU and
GPU. A retry of a unit on the same GPU type and software repeats the numbers of the attempt it
replaces; on another type it does not.
"""
from __future__ import annotations

import os

import torch


def use_deterministic_torch() -> None:
    """Switch this process to deterministic kernels and full float32 precision (idempotent)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS makes its first handle
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
