"""Loss terms of the DERL-style model, as pure functions on tensors.

The DERL paper is public only as an abstract, so these follow *our* design in
``shared/specs/derl.md`` (section names below), not equations of the paper:

* :func:`orthogonality_loss` -- "Orthogonality and shared alignment", L_orth;
* :func:`shared_alignment_loss` -- same section, L_sim;
* :func:`feature_reconstruction_loss`, :func:`cross_modal_reconstruction_loss`,
  :func:`representation_reconstruction_loss` -- "Multi-level reconstruction", levels 1-3;
* :func:`load_balance_loss` -- "Hybrid experts", the optional L_bal on the shared pool.

Every reconstruction target is detached here, so callers cannot forget the stop-gradient.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

EPS = 1e-8


def centred_unit_rows(features: torch.Tensor) -> torch.Tensor:
    """(B, d) -> subtract the batch mean, then scale every row (sample) to unit L2 norm.

    Rows that are zero after centring (e.g. a batch of one) stay zero.
    """
    centred = features - features.mean(dim=0, keepdim=True)
    return centred / centred.norm(dim=1, keepdim=True).clamp_min(EPS)


def cross_correlation_penalty(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """‖ãᵀ b̃‖_F² / B on centred, row-normalised (B, d) features ã, b̃.

    Zero exactly when every feature column of ã is orthogonal (over the batch) to every feature
    column of b̃. Divided by the batch size B (our choice) so that its weight means the same at
    every batch size: for unrelated random features the value is about 1.
    """
    a, b = centred_unit_rows(a), centred_unit_rows(b)
    return (a.transpose(0, 1) @ b).pow(2).sum() / a.shape[0]


def orthogonality_loss(private: Optional[Sequence[torch.Tensor]],
                       shared: Optional[Sequence[torch.Tensor]]) -> torch.Tensor:
    """L_orth = Σ_m ‖p̃_mᵀ s̃_m‖_F² + Σ_{m<n} ‖p̃_mᵀ p̃_n‖_F² (spec "Orthogonality"), each term
    by :func:`cross_correlation_penalty`.

    Args:
        private: per modality the token-pooled private features (B, d), or None (no private space).
        shared: per modality the token-pooled shared features (B, d), or None (no shared space).
    Terms whose features are absent are left out; with no private space the loss is 0.
    """
    reference = next(iter(private or shared or ()), None)
    total = reference.new_zeros(()) if reference is not None else torch.zeros(())
    if not private:
        return total
    if shared:
        for p, s in zip(private, shared):
            total = total + cross_correlation_penalty(p, s)
    for m in range(len(private)):
        for n in range(m + 1, len(private)):
            total = total + cross_correlation_penalty(private[m], private[n])
    return total


def shared_alignment_loss(shared: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """L_sim = Σ_{m<n} (1 − cos(s_m, s_n)) over the pairs of modalities present in a sample,
    averaged over the batch (spec "Orthogonality and shared alignment").

    Args:
        shared: (B, M, d) token-pooled shared features.
        present: (B, M) bool, which modalities a sample has.
    """
    present = present.to(torch.bool)
    total = shared.new_zeros(shared.shape[0])
    modalities = shared.shape[1]
    for m in range(modalities):
        for n in range(m + 1, modalities):
            distance = 1.0 - F.cosine_similarity(shared[:, m], shared[:, n], dim=-1, eps=EPS)
            total = total + distance * (present[:, m] & present[:, n]).to(shared.dtype)
    return total.mean()


def feature_reconstruction_loss(reconstruction: torch.Tensor, complete: torch.Tensor) -> torch.Tensor:
    """Level 1: MSE(D_m([P_m; S_m]), sg(X̄_m)), averaged over samples, modalities, tokens, channels.

    Args:
        reconstruction: (B, M, T, d) decoded from the corrupted input's private and shared features.
        complete: (B, M, T, d) token features of the complete input (detached here).
    """
    return F.mse_loss(reconstruction, complete.detach())


def cross_modal_reconstruction_loss(reconstruction: torch.Tensor, complete: torch.Tensor,
                                    valid: torch.Tensor) -> torch.Tensor:
    """Level 2: MSE(D_m([P_m; mean_{n≠m} S_n]), sg(X̄_m)) over the (sample, modality) pairs in ``valid``.

    Args:
        reconstruction: (B, M, T, d) decoded with the other modalities' shared features.
        complete: (B, M, T, d) token features of the complete input (detached here).
        valid: (B, M) bool, pairs that had at least one other modality present to borrow from.
    Returns 0 (with gradient structure intact) when no pair is valid.
    """
    per_pair = (reconstruction - complete.detach()).pow(2).mean(dim=(2, 3))
    weights = valid.to(per_pair.dtype)
    return (per_pair * weights).sum() / weights.sum().clamp_min(1.0)


def representation_reconstruction_loss(fused: torch.Tensor, fused_complete: torch.Tensor) -> torch.Tensor:
    """Level 3: MSE(h, sg(h̄)) between the fused vector of the corrupted input and that of the
    complete input, both (B, d)."""
    return F.mse_loss(fused, fused_complete.detach())


def load_balance_loss(gates: torch.Tensor) -> torch.Tensor:
    """L_bal = K Σ_j ḡ_j² − 1 for routing weights ``gates`` (N, K) (rows sum to 1), ḡ their mean.

    The dense-routing analogue of the Switch Transformer's f·P balance term: 0 when the pool is
    used evenly on average, K − 1 when one expert takes all the weight.
    """
    usage = gates.mean(dim=0)
    return gates.shape[-1] * usage.pow(2).sum() - 1.0
