"""Is DAR's running CLUB estimate tight, and does it measure dependence rather than feature scale?

A reference q_theta per modality is fitted to convergence on one set of features and the CLUB
estimate is read on another (held out), so neither the fit nor the reading flatters itself; the
reference's log-variance is free (no Tanh cap), so a q_theta pinned at its variance floor shows as a
gap. Features are ``{modality: (H~spec, H~com)}`` as :meth:`DAR.club_features` returns them (raw,
detached); each set goes through ``club_input`` on its own statistics, as a batch does in training.
Used by ``tests/test_dar_club.py`` and ``bench/dar_club.py``.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Dict, Optional

import torch

from . import dar_losses as losses
from .dar import GaussianPosterior

Features = Dict[str, tuple]


def fit_posterior(spec: torch.Tensor, com: torch.Tensor, hidden: int, *, capped: bool = True,
                  reduction: str = "sum", held_out: Optional[tuple] = None, lr: float = 3e-3,
                  max_steps: int = 3000, patience: int = 200, seed: int = 0) -> GaussianPosterior:
    """A fresh q_theta fitted by full-batch Adam (maximum likelihood) on (spec, com). Stops when the
    watched NLL -- on ``held_out`` = (spec, com) when given, else the fitting set's -- has not
    improved by 1e-3 relative for ``patience`` steps, and returns the q_theta of its best value."""
    torch.manual_seed(seed)
    q = GaussianPosterior(spec.shape[-1], hidden, capped=capped)
    opt = torch.optim.Adam(q.parameters(), lr=lr)
    watch_spec, watch_com = held_out if held_out is not None else (spec, com)
    best, best_state, since = math.inf, copy.deepcopy(q.state_dict()), 0
    for _ in range(max_steps):
        opt.zero_grad()
        (-losses.gaussian_log_likelihood(*q(spec), com, reduction)).backward()
        opt.step()
        with torch.no_grad():
            value = float(-losses.gaussian_log_likelihood(*q(watch_spec), watch_com, reduction))
        if not math.isfinite(value):
            break
        if best == math.inf or value < best - 1e-3 * abs(best):  # (inf - inf is nan: compare nothing to it)
            best, best_state, since = value, copy.deepcopy(q.state_dict()), 0
        else:
            since += 1
            if since >= patience:
                break
    q.load_state_dict(best_state)
    return q


def as_seen(features: Features, club_input: str) -> Features:
    """``features`` as q_theta sees them under ``club_input`` (each tensor on its own statistics)."""
    return {m: (losses.club_input(spec, club_input), losses.club_input(com, club_input))
            for m, (spec, com) in features.items()}


def converged_club(features: Features, hidden: int, *, club_input: str = "raw", reduction: str = "sum",
                   capped: bool = True, held_out: Optional[Features] = None, **fit) -> float:
    """L_diff (summed over modalities) of fresh q_theta's fitted to convergence on ``features`` and
    read on ``held_out`` (default: on ``features`` themselves)."""
    fitting = as_seen(features, club_input)
    reading = as_seen(held_out, club_input) if held_out is not None else fitting
    total = 0.0
    for m, (spec, com) in fitting.items():
        q = fit_posterior(spec, com, hidden, capped=capped, reduction=reduction,
                          held_out=reading[m] if held_out is not None else None, **fit)
        with torch.no_grad():
            total += float(losses.club_estimate(*q(reading[m][0]), reading[m][1], reduction))
    return total


@dataclass(frozen=True)
class Tightness:
    running: float    # the model's q_theta on the held-out features
    reference: float  # an uncapped q_theta fitted to convergence, read on the same held-out features
    tolerance: float

    @property
    def ratio(self) -> float:
        return self.running / self.reference if self.reference else math.nan

    @property
    def tight(self) -> bool:
        return abs(self.running - self.reference) <= self.tolerance * abs(self.reference)


def tightness(model, fitting: Features, held_out: Features, *, tolerance: float = 0.1, capped: bool = False,
              reference: Optional[float] = None, **fit) -> Tightness:
    """The model's running L_diff on ``held_out`` against the reference fitted on ``fitting`` (same
    architecture, the model's ``club_input`` and ``club_reduction``; log-variance free unless
    ``capped``: with the cap it only asks whether q_theta keeps up with its own family);
    ``reference`` reuses a value computed before on the same features."""
    if reference is None:
        reference = converged_club(fitting, model.posterior[next(iter(fitting))].lstm.hidden_size,
                                   club_input=model.club_input, reduction=model.club_reduction, capped=capped,
                                   held_out=held_out, **fit)
    return Tightness(running=model.club_value(held_out), reference=reference, tolerance=tolerance)


def rescaled(features: Features, *, com: float = 1.0, spec: float = 1.0) -> Features:
    """The same features with H~com multiplied by ``com`` and H~spec by ``spec`` (the mutual
    information is unchanged)."""
    return {m: (s * spec, c * com) for m, (s, c) in features.items()}
