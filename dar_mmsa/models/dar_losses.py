"""DAR's losses as pure functions (Yang et al., "Decoupling and Reconstructing"; equation numbers
are the paper's). The model (:mod:`dar_mmsa.models.dar`) produces the tensors, these functions
turn them into numbers, :func:`total_loss` weighs them.

Shapes: sequences are (B, t, d); pooled features are (B, d); ``weights`` are (B, t) pooling
weights that sum to 1 over t.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F


def time_average(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean over time, (B, t, d) -> (B, d): the feature ``z`` of §3.4 ("we average the
    original time series features in the time dimension")."""
    return torch.einsum("btd,bt->bd", x, weights)


# ----------------------------------------------------------------------------- L_sim (Eq. 4, 6, 7)
def info_nce(anchors: torch.Tensor, candidates: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
             tau: float) -> torch.Tensor:
    """InfoNCE over explicit positive and negative sets (Eq. 6).

    For every positive pair (anchor i, candidate j):
    ``-log( e^{s_ij/tau} / (e^{s_ij/tau} + sum_{k in N(i)} e^{s_ik/tau}) )`` with ``s`` the cosine
    similarity, averaged over all positive pairs (the 1/|P| of Eq. 6). The positive is kept in its
    own denominator, as in InfoNCE proper, so the loss is >= 0.

    Args:
        anchors: (N, d); candidates: (M, d).
        positive, negative: (N, M) boolean masks of the sets P and N.
        tau: temperature > 0.

    Returns a scalar; 0 (still attached to the graph) when there is no positive pair.
    """
    logits = F.normalize(anchors, dim=-1) @ F.normalize(candidates, dim=-1).t() / tau
    floor = torch.finfo(logits.dtype).min  # not -inf: a row without negatives must stay differentiable
    negatives = torch.logsumexp(logits.masked_fill(~negative, floor), dim=1, keepdim=True)
    per_pair = torch.logaddexp(logits, negatives) - logits
    count = positive.sum()
    return (per_pair * positive).sum() / count.clamp(min=1)


def common_info_nce(features: Sequence[torch.Tensor], tau: float) -> torch.Tensor:
    """L_sim^com (Eq. 4 first term, Eq. 6, Fig. 3a).

    ``features``: one (B, d) tensor of pooled common features per modality. For each pair of
    modalities (m, n) and each direction: anchor = sample i of m, positive = sample i of n,
    negatives = the other samples of n. Mean over the modality pairs of the symmetric loss.
    """
    batch = features[0].shape[0]
    same = torch.eye(batch, dtype=torch.bool, device=features[0].device)
    losses = []
    for m in range(len(features)):
        for n in range(m + 1, len(features)):
            forward = info_nce(features[m], features[n], same, ~same, tau)
            backward = info_nce(features[n], features[m], same, ~same, tau)
            losses.append((forward + backward) / 2)
    return torch.stack(losses).mean()


def independent_info_nce(features: Sequence[torch.Tensor], tau: float) -> torch.Tensor:
    """L_sim^spec (Eq. 4 second term, Eq. 6, Fig. 3b).

    ``features``: one (B, d) tensor of pooled independent features per modality. Anchor = sample i
    of modality m; positives = the other samples j != i of the same modality m; negatives = every
    sample of the other modalities. All anchors share one candidate pool (all modalities stacked).
    """
    batch, n_mod = features[0].shape[0], len(features)
    pool = torch.cat(list(features), dim=0)  # (M*B, d), modality-major
    modality = torch.arange(n_mod, device=pool.device).repeat_interleave(batch)
    same_modality = modality[:, None] == modality[None, :]
    itself = torch.eye(n_mod * batch, dtype=torch.bool, device=pool.device)
    return info_nce(pool, pool, same_modality & ~itself, ~same_modality, tau)


def similarity_loss(common: Sequence[torch.Tensor], independent: Sequence[torch.Tensor], tau: float) -> torch.Tensor:
    """L_sim = L_sim^com + L_sim^spec (Eq. 7), on pooled (B, d) features per modality."""
    return common_info_nce(common, tau) + independent_info_nce(independent, tau)


# ----------------------------------------------------------------------------- L_diff (Eq. 8, 9)
# What q_theta and CLUB see: "scale_free" standardises H~spec and H~com per dimension over the batch
# and time, so shrinking a feature cannot lower the estimate; "raw" is the features as they are (the
# estimator as published). docs/models.md "DAR: a scale-free L_diff" has the measurement behind it.
CLUB_INPUT_CHOICES = ("scale_free", "raw")
# How log q is reduced over the d dimensions: "sum" (CLUB's reference code) or "mean" (DAR's default).
CLUB_REDUCTION_CHOICES = ("sum", "mean")


def standardise(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps^2) per dimension (last axis) over every other axis (batch and
    time): batch normalisation without affine parameters or running statistics.

    The gradient flows through the mean and the variance too, so the result does not change when
    ``x`` is rescaled and its gradient has no component along ``x``: nothing pushes ``x`` to shrink.
    With the statistics held constant the gradient does have such a component, and the smaller std
    then magnifies the next gradient: in the measurement (docs/models.md) the features shrank and
    the task stopped learning."""
    axes = tuple(range(x.dim() - 1))
    mean = x.mean(axes, keepdim=True)
    var = x.var(axes, unbiased=False, keepdim=True)
    return (x - mean) / (var + eps * eps).sqrt()


def club_input(features: torch.Tensor, mode: str) -> torch.Tensor:
    """The tensor q_theta and CLUB see for ``features`` (an H~spec or H~com sequence) under ``mode``,
    one of :data:`CLUB_INPUT_CHOICES`."""
    if mode == "scale_free":
        return standardise(features)
    if mode == "raw":
        return features
    raise ValueError(f"club input must be one of {CLUB_INPUT_CHOICES}, got {mode!r}")


def _reduce_dims(per_dim: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "sum":
        return per_dim.sum(-1)
    if reduction == "mean":
        return per_dim.mean(-1)
    raise ValueError(f"club reduction must be one of {CLUB_REDUCTION_CHOICES}, got {reduction!r}")


def gaussian_log_likelihood(mean: torch.Tensor, log_var: torch.Tensor, target: torch.Tensor,
                            reduction: str = "sum") -> torch.Tensor:
    """Mean over samples and steps of log q_theta(target | .) for a diagonal Gaussian q_theta with
    the given per-step ``mean`` and ``log_var`` (all (B, t, d)); summed (or averaged, ``reduction``)
    over d. This is what q_theta maximises (§3.4: q_theta is the variational approximation of
    p(com | spec) in Eq. 8)."""
    per_dim = -0.5 * (math.log(2 * math.pi) + log_var + (target - mean) ** 2 / log_var.exp())
    return _reduce_dims(per_dim, reduction).mean()


def club_estimate(mean: torch.Tensor, log_var: torch.Tensor, target: torch.Tensor,
                  reduction: str = "sum") -> torch.Tensor:
    """CLUB upper bound of I(spec; com) (Eq. 8, 9), per step, averaged over steps.

    ``mean``/``log_var`` (B, t, d) are q_theta's Gaussian given sample i's independent sequence;
    ``target`` (B, t, d) the common sequence. Eq. 9: mean_i [log q(y_i|x_i) - mean_j log q(y_j|x_i)]
    with j over the whole batch (pairs at the same step), log q summed (or averaged, ``reduction``)
    over d. The Gaussian normaliser cancels, and mean_j (y_j - mu_i)^2 = (mu_i - mean_j y_j)^2 +
    var_j(y_j), so all B^2 pairs cost O(B).
    """
    precision = 0.5 * (-log_var).exp()
    matched = -((target - mean) ** 2) * precision
    batch_mean = target.mean(0, keepdim=True)
    batch_var = target.var(0, unbiased=False, keepdim=True)
    all_pairs = -((mean - batch_mean) ** 2 + batch_var) * precision
    return _reduce_dims(matched - all_pairs, reduction).mean()


def feature_statistics(common: torch.Tensor, independent: torch.Tensor) -> dict:
    """What explains an L_diff value, on (B, t, d) sequences, as floats: the per-dimension variance
    over batch and time of H~com and of H~spec (mean over d), and their correlation (Pearson, over
    batch and time, of dimension k of H~com with dimension k of H~spec -- both carry the aligned
    input on their residual path -- averaged over d)."""
    com = common.detach().float().reshape(-1, common.shape[-1])
    spec = independent.detach().float().reshape(-1, independent.shape[-1])
    com_c, spec_c = com - com.mean(0), spec - spec.mean(0)
    com_var, spec_var = com_c.pow(2).mean(0), spec_c.pow(2).mean(0)
    corr = (com_c * spec_c).mean(0) / (com_var * spec_var).sqrt().clamp(min=1e-12)
    return {"com_var": float(com_var.mean()), "spec_var": float(spec_var.mean()), "com_spec_corr": float(corr.mean())}


# ----------------------------------------------------------------------------- L_re, L_recon (Eq. 10, 11, 17)
def restoration_loss(targets: Sequence[torch.Tensor], restored: Sequence[torch.Tensor]) -> torch.Tensor:
    """L_re = sum_m ||U~1_m - D_m(Concat(H~com_n, H~com_o, H~spec_m))||^2 (Eq. 10, 11).

    ``targets[m]`` is the aligned corrupted input U~1_m, ``restored[m]`` the decoder's output.
    Mean squared error per modality (not a raw sum), so the scale does not depend on t*d.
    """
    return sum(F.mse_loss(r, u) for u, r in zip(targets, restored))


def reconstruction_loss(reconstructed: Sequence[torch.Tensor], complete: Sequence[torch.Tensor]) -> torch.Tensor:
    """L_recon = ||H^ - H||^2 + ||U^1 - U1||^2 (Eq. 17), summed over the given pairs.

    Pass every (reconstructed, complete) pair: per modality the common features, the independent
    features and the aligned input. Mean squared error per pair.
    """
    return sum(F.mse_loss(r, c) for r, c in zip(reconstructed, complete))


# ----------------------------------------------------------------------------- L_task, L_total (Eq. 2, 23, 24)
def task_loss(prediction: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Loss(y, y^), one term of Eq. 23; L1, MMSA's regression loss. Shapes (B, 1)."""
    return F.l1_loss(prediction.view(-1), labels.view(-1))


def decouple_loss(sim: torch.Tensor, diff: torch.Tensor, re: torch.Tensor, lam: float) -> torch.Tensor:
    """L_decouple = lambda (L_sim + L_diff) + L_re (Eq. 2)."""
    return lam * (sim + diff) + re


TERMS = ("task", "boot", "sim", "diff", "re", "recon")


def total_loss(terms: Mapping[str, torch.Tensor], *, alpha: float, beta: float, lam: float,
               use_sim: bool = True, use_diff: bool = True, use_recon: bool = True,
               use_boot: bool = True) -> torch.Tensor:
    """L_total = L_task + alpha L_decouple + beta L_recon (Eq. 24), L_task = Loss(y, y^) +
    Loss(y, y^_boot) (Eq. 23).

    ``terms`` holds the scalars named in :data:`TERMS` (``task`` = Loss(y, y^), ``boot`` =
    Loss(y, y^_boot)). The switches are Table 2's ablations; each removes exactly its weighted term:
    ``use_sim`` alpha*lambda*L_sim, ``use_diff`` alpha*lambda*L_diff, ``use_recon`` beta*L_recon,
    ``use_boot`` Loss(y, y^_boot).
    """
    zero = torch.zeros((), device=terms["task"].device)
    sim = terms["sim"] if use_sim else zero
    diff = terms["diff"] if use_diff else zero
    loss = terms["task"] + alpha * decouple_loss(sim, diff, terms["re"], lam)
    if use_boot:
        loss = loss + terms["boot"]
    if use_recon:
        loss = loss + beta * terms["recon"]
    return loss
