"""DAR: Decoupled-Adaptive Reconstruction (Yang et al., "Decoupling and Reconstructing: A Multimodal
Sentiment Analysis Framework Towards Robustness"). Spec: ``shared/specs/dar.md``; equation numbers
are the paper's. Losses live in :mod:`dar_mmsa.models.dar_losses`, the training loop (corruption on
the fly, the alternating q_theta step, selection by total validation loss) in
:mod:`dar_mmsa.training.dar`.
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import register_model
from . import dar_losses as losses
from .layers import MulTEncoder, Transformer
from .text import BertEncoder

MODALITIES = ("text", "audio", "vision")
# Logged beside the loss terms to explain L_diff (DAR.club_terms)
CLUB_DIAGNOSTICS = ("com_var", "spec_var", "com_spec_corr", "q_var")

_SHARED = {
    "pretrained": "bert-base-uncased",
    "batch_size": 64,
    "learning_rate": 1e-4,
    "weight_decay": 1e-4,
    "grad_clip": 1.0,
    # BERT's own parameter group and the schedule (docs/models.md "DAR: training recipe")
    "bert_learning_rate": 5e-5,
    "decay_norms": False,
    "lr_schedule": "warmup_cosine",
    # q_theta of CLUB: Adam lr, steps per main step, main steps before L_diff enters the loss
    "club_learning_rate": 3e-3,
    "club_steps": 5,
    "club_warmup_steps": 30,
    # what CLUB sees and how log q is reduced over d (dar_losses.CLUB_INPUT_CHOICES, CLUB_REDUCTION_CHOICES)
    "club_input": "scale_free",
    "club_reduction": "mean",
    "dim": 128,
    "aligned_len": 50,
    "conv_kernel": 3,
    "encoder_layers": 1,
    "encoder_heads": 8,
    "encoder_dim_head": 16,
    "encoder_mlp_dim": 256,
    "fusion_layers": 2,
    "fusion_heads": 8,
    "dropout": 0.1,
    "club_hidden": 64,
    "lambda_decouple": 0.7,
    "alpha": 0.1,
    "beta": 0.1,
    "tau": 0.1,
    "use_sim_loss": True,
    "use_diff_loss": True,
    "use_recon_loss": True,
    "use_boot_loss": True,
    "detach_recon_targets": False,
}

# The recipe before the CLUB and BERT fixes (one q_theta step per batch at lr 1e-4, BERT at the
# model's constant lr, weight decay on every parameter): ``--set`` these to rerun it.
OLD_RECIPE = {"bert_learning_rate": None, "decay_norms": True, "lr_schedule": "constant",
              "club_learning_rate": 1e-4, "club_steps": 1, "club_warmup_steps": 0}

DEFAULTS = {
    "commonParams": {
        "need_data_aligned": False,
        "need_model_aligned": False,
        "use_bert": True,
        "use_finetune": True,
        "early_stop": 10,
        "max_epochs": 100,
    },
    "datasetParams": {
        "mosi": dict(_SHARED, train_missing_rate=0.3),
        "mosei": dict(_SHARED, train_missing_rate=0.4),
        # the paper gives no SIMS setting: k of MOSI, the dataset of SIMS's size (docs/models.md)
        "sims": dict(_SHARED, pretrained="bert-base-chinese", train_missing_rate=0.3),
    },
}

# What a tuning search may try (``run_benchmark.py --experiment tune``): only the choices the paper
# leaves open. lambda_decouple, alpha, beta and the training rate k stay at the paper's values.
SEARCH_SPACE = {
    "club_input": list(losses.CLUB_INPUT_CHOICES),
    "club_reduction": list(losses.CLUB_REDUCTION_CHOICES),
    "club_learning_rate": [1e-4, 1e-3, 3e-3, 1e-2],
    "club_steps": [1, 3, 5, 10],
    "learning_rate": [5e-5, 1e-4, 3e-4, 1e-3],
    "bert_learning_rate": [1e-5, 3e-5, 5e-5],
    "dropout": [0.0, 0.1, 0.2, 0.3],
    "batch_size": [16, 32, 64],
}


def hyperparameter(args, key: str):
    """``args[key]``, or one line saying the config lacks it."""
    if args.get(key) is None:
        raise ConfigError(f"dar config has no '{key}': add it or regenerate the config with "
                          f"python -m dar_mmsa.config --write")
    return args[key]


class AlignmentLayer(nn.Module):
    """(B, T_m, d_m) -> (B, t, d): Conv1d, GELU, LayerNorm, adaptive average pooling over time (§3.4)."""

    def __init__(self, in_dim: int, dim: int, length: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, dim, kernel, padding=kernel // 2)
        self.norm = nn.LayerNorm(dim)
        self.length = length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv(x.transpose(1, 2)))
        x = self.norm(x.transpose(1, 2))
        return F.adaptive_avg_pool1d(x.transpose(1, 2), self.length).transpose(1, 2)


class GatedFusion(nn.Module):
    """g = sigmoid(W_g [H^, H~] + b_g); H_fused = g * H^ + (1 - g) * H~ (Eq. 15-16)."""

    def __init__(self, dim: int):
        super().__init__()
        self.gate = nn.Linear(2 * dim, dim)

    def forward(self, reconstructed: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.gate(torch.cat([reconstructed, observed], dim=-1)))
        return g * reconstructed + (1 - g) * observed


class GaussianPosterior(nn.Module):
    """q_theta(com | spec) of CLUB (Eq. 8-9): a BiLSTM over the independent sequence and, per step,
    the mean and log-variance of a diagonal Gaussian over the common feature. The log-variance is
    Tanh-capped to [-1, 1] as in CLUB's reference code; ``capped=False`` leaves it free (the
    reference fit of the tightness check, :mod:`dar_mmsa.models.dar_club`)."""

    def __init__(self, dim: int, hidden: int, capped: bool = True):
        super().__init__()
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.mean = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        cap = [nn.Tanh()] if capped else []
        self.log_var = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, dim), *cap)

    def forward(self, spec: torch.Tensor):
        h, _ = self.lstm(spec)
        return self.mean(h), self.log_var(h)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Within the block ``module``'s parameters are constants: gradients pass through it to its
    inputs but never reach the parameters (the main step must not train q_theta)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


# A config without the key was written before it existed: it ran the estimator as published.
_CLUB_LEGACY = {"club_input": "raw", "club_reduction": "sum"}


def club_options(args) -> tuple:
    """(club_input, club_reduction) from the config, each checked against its choices."""
    chosen = []
    for key, choices in (("club_input", losses.CLUB_INPUT_CHOICES), ("club_reduction", losses.CLUB_REDUCTION_CHOICES)):
        value = args.get(key, _CLUB_LEGACY[key])
        if value not in choices:
            raise ConfigError(f"dar: {key} must be one of {', '.join(choices)}, got {value!r}")
        chosen.append(value)
    return tuple(chosen)


def two_layer_mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))


def prediction_head(in_dim: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))


def per_modality(make) -> nn.ModuleDict:
    return nn.ModuleDict({m: make(m) for m in MODALITIES})


def others(m: str) -> List[str]:
    return [n for n in MODALITIES if n != m]


@register_model(
    "dar",
    trainer="dar_mmsa.training.dar:DARTrainer",
    defaults=DEFAULTS,
    search_space=SEARCH_SPACE,
    description="Decoupled-Adaptive Reconstruction (Yang et al.): decouple, reconstruct, fuse",
    display="DAR",
)
class DAR(nn.Module):
    """DAR (§3, Eq. 1-24), built by MMSA's AMIO as ``DAR(args)``.

    Data flow for each modality m in (text, audio, vision), corrupted input U~_m:

    1. alignment (§3.4): Conv1d(d_m -> d) -> GELU -> LayerNorm -> adaptive average pooling to t steps: U~1_m;
    2. decouple (Eq. 1): common and independent encoders E_c^m, E_s^m -> H~com_m, H~spec_m;
    3. reconstruct (Eq. 12-14): H^com_m = E_com^m(Linear(Concat(H~com_l, H~com_a, H~com_v))),
       H^spec_m = E_spec^m(H~spec_m), U^1_m = D^rec_m(Concat(H^com_m, H^spec_m));
    4. gated fusion (Eq. 15-16) of H^ with H~, separately for com and spec;
    5. fusion-output (Eq. 18-21): self-attention over each fused common sequence, MulT cross-modal
       attention between fused independent sequences, last frames concatenated, MLP -> y^.

    With the complete inputs (``text_full=...`` etc., training and validation loss only) the same
    alignment and encoders give U1_m, Hcom_m, Hspec_m (the targets of L_recon) and the bootstrap head
    gives y^_boot = MLP(pool_t(Hcom)) (Eq. 22). Inference (no ``*_full``) never runs that branch, the
    restoration/reconstruction decoders or the bootstrap head.

    Choices where the paper is silent (each a config key; see also docs/models.md "## DAR"):

    * d = 128 (``dim``), t = 50 (``aligned_len``), Conv1d kernel 3 (``conv_kernel``) with padding
      kernel // 2, GELU, LayerNorm, then adaptive average pooling over time;
    * E_c, E_s, E_com, E_spec: pre-norm Transformer (``layers.Transformer``), ``encoder_layers`` = 1,
      ``encoder_heads`` = 8, ``encoder_dim_head`` = 16, ``encoder_mlp_dim`` = 256, no positional
      embedding (the kernel-3 convolution gives local order); E_com has a Linear(3d -> d) in front;
    * D^re (Eq. 10) and D^rec (Eq. 14): 2-layer MLPs (in -> d -> d, GELU), one per modality, separate
      (input 3d vs 2d); D^rec reads the *reconstructed* features (the text of §3.5);
    * common fusion (Eq. 18): per modality a ``layers.MulTEncoder`` in self-attention mode,
      ``fusion_layers`` = 2, ``fusion_heads`` = 8; independent fusion (Eq. 19-20): one MulTEncoder per
      (target, source) pair, same sizes, no causal mask. Both use MulT's sinusoidal positions and
      ``dropout`` = 0.1 (attention, ReLU, residual, embedding); h = output at the last step;
    * prediction head: Linear(9d -> d) -> ReLU -> Dropout -> Linear(d -> 1); bootstrap head: the same
      shape on the concatenated pooled complete common features (3d);
    * q_theta (Eq. 9), one per modality: BiLSTM (``club_hidden`` = 64 per direction) over the
      independent sequence, then per step mean = Linear -> ReLU -> Linear and
      log-variance = Linear -> ReLU -> Linear -> Tanh (variance bounded to [e^-1, e] times the
      variance of what it models: with ``club_input`` "scale_free" that is 1 per dimension);
    * padding: the model is given no audio/vision lengths (AMIO passes only the three tensors) and a
      zero frame may be padding or a dropped frame, so audio/vision steps all count; text uses its
      attention mask (corruption never changes it), pooled to t, as time-averaging weights for z
      (L_sim) and for the bootstrap head. Attention itself is unmasked, as in the paper;
    * losses (:mod:`dar_mmsa.models.dar_losses`): InfoNCE with cosine similarity, tau = 0.1, the
      positive kept in its own denominator; common pairs CLIP-style (candidates = the other
      modality's samples), symmetric, mean over the 3 modality pairs; independent pairs: positives =
      the other samples of the same modality, negatives = every sample of the other two modalities.
      CLUB per step (log q averaged over d, ``club_reduction`` = "mean", where CLUB's reference code
      sums; mean over steps and samples) over all B^2 pairs of Eq. 9 (j = i included) in closed
      form; one q_theta per modality, L_diff summed over modalities. q_theta and CLUB see H~spec
      and H~com standardised per dimension over batch and time (``club_input`` = "scale_free",
      gradient through the statistics), so the estimate does not change when the encoders rescale
      their features; "raw" is the estimator on the features as they are (docs/models.md "DAR: a
      scale-free L_diff");
      L_re and L_recon: mean squared error per term, summed over modalities (and, for L_recon, over
      com, spec and the aligned input); targets of L_recon not detached (``detach_recon_targets``).
      Loss(y, .) = L1. The ablation switches ``use_sim_loss``, ``use_diff_loss``,
      ``use_recon_loss``, ``use_boot_loss`` drop their weighted term (Table 2);
    * L_sim^spec under this (literal) reading of Eq. 4 is ~0.01 from the first step: within a
      modality the pooled independent features are already nearly parallel and across modalities
      nearly orthogonal, so the term carries no signal (docs/models.md);
    * training recipe (read by :class:`dar_mmsa.training.dar.DARTrainer`): q_theta trained by Adam
      at ``club_learning_rate`` = 3e-3, ``club_steps`` = 5 steps per main step, L_diff out of the
      training loss for the first ``club_warmup_steps`` = 30 main steps, so that CLUB stays close to
      a converged q_theta (an upper bound) while the encoders move; BERT in its own parameter group
      at ``bert_learning_rate`` = 5e-5, no weight decay on biases/norms (``decay_norms`` false),
      warm-up + cosine per epoch (``lr_schedule``). :data:`OLD_RECIPE` is the previous recipe.
    """

    def __init__(self, args):
        super().__init__()
        get = lambda key: hyperparameter(args, key)  # noqa: E731
        d, t = int(get("dim")), int(get("aligned_len"))
        heads, fusion_heads = int(get("encoder_heads")), int(get("fusion_heads"))
        if d < 1 or t < 1 or heads < 1 or fusion_heads < 1 or d % fusion_heads:
            raise ConfigError(f"dar: dim={d} and aligned_len={t} must be >= 1 and fusion_heads={fusion_heads} "
                              f"must divide dim")
        if not float(get("tau")) > 0:
            raise ConfigError(f"dar: tau must be > 0, got {get('tau')}")
        feature_dims = hyperparameter(args, "feature_dims")
        self.dim, self.tau = d, float(get("tau"))
        self.detach_recon_targets = bool(args.get("detach_recon_targets", False))
        self.club_input, self.club_reduction = club_options(args)

        self.text_encoder = BertEncoder(get("pretrained"), finetune=bool(args.get("use_finetune", True)))
        in_dims = {"text": self.text_encoder.hidden_size, "audio": int(feature_dims[1]), "vision": int(feature_dims[2])}
        kernel = int(get("conv_kernel"))
        self.align = per_modality(lambda m: AlignmentLayer(in_dims[m], d, t, kernel))

        def encoder():
            return Transformer(d, int(get("encoder_layers")), heads, int(get("encoder_mlp_dim")),
                               int(get("encoder_dim_head")))

        # decouple module (Eq. 1, 10)
        self.common_encoder = per_modality(lambda m: encoder())
        self.independent_encoder = per_modality(lambda m: encoder())
        self.restoration_decoder = per_modality(lambda m: two_layer_mlp(3 * d, d, d))
        self.posterior = per_modality(lambda m: GaussianPosterior(d, int(get("club_hidden"))))
        # reconstruct module (Eq. 12-16)
        self.common_projection = per_modality(lambda m: nn.Linear(3 * d, d))
        self.common_reconstructor = per_modality(lambda m: encoder())
        self.independent_reconstructor = per_modality(lambda m: encoder())
        self.reconstruction_decoder = per_modality(lambda m: two_layer_mlp(2 * d, d, d))
        self.common_gate = per_modality(lambda m: GatedFusion(d))
        self.independent_gate = per_modality(lambda m: GatedFusion(d))
        # fusion-output module (Eq. 18-22)
        dropout = float(get("dropout"))

        def fusion_encoder():
            return MulTEncoder(d, fusion_heads, int(get("fusion_layers")), attn_dropout=dropout,
                               relu_dropout=dropout, res_dropout=dropout, embed_dropout=dropout,
                               attn_mask=False, position_embedding=True)

        self.common_fusion = per_modality(lambda m: fusion_encoder())
        self.cross_fusion = nn.ModuleDict({f"{n}_to_{m}": fusion_encoder() for m in MODALITIES for n in others(m)})
        self.head = prediction_head(9 * d, d, dropout)
        self.boot_head = prediction_head(3 * d, d, dropout)

    # ------------------------------------------------------------------ parameter groups
    def variational_parameters(self) -> List[nn.Parameter]:
        """q_theta's parameters: trained only by their own optimizer on detached features."""
        return list(self.posterior.parameters())

    def main_parameters(self) -> List[nn.Parameter]:
        """Everything but q_theta."""
        ids = {id(p) for p in self.variational_parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    # ------------------------------------------------------------------ forward
    def pooling_weights(self, text: torch.Tensor, steps: int) -> Dict[str, torch.Tensor]:
        """(B, t) time-averaging weights per modality (see the padding choice in the docstring)."""
        mask = text[:, 1].float().unsqueeze(1)  # (B, 1, L)
        text_w = F.adaptive_avg_pool1d(mask, steps).squeeze(1)
        text_w = text_w / text_w.sum(-1, keepdim=True).clamp(min=1e-6)
        uniform = torch.full_like(text_w, 1.0 / steps)
        return {"text": text_w, "audio": uniform, "vision": uniform}

    def decouple(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor) -> Dict[str, Dict]:
        """Alignment and the two encoders (Eq. 1): {"aligned", "com", "spec"} -> {modality: (B, t, d)}."""
        raw = {"text": self.text_encoder(text), "audio": audio, "vision": vision}
        aligned = {m: self.align[m](raw[m]) for m in MODALITIES}
        return {
            "aligned": aligned,
            "com": {m: self.common_encoder[m](aligned[m]) for m in MODALITIES},
            "spec": {m: self.independent_encoder[m](aligned[m]) for m in MODALITIES},
        }

    def reconstruct(self, com: Dict[str, torch.Tensor], spec: Dict[str, torch.Tensor]):
        """Eq. 12-13: (H^com, H^spec) per modality from the corrupted decoupled features."""
        all_com = torch.cat([com[m] for m in MODALITIES], dim=-1)
        com_hat = {m: self.common_reconstructor[m](self.common_projection[m](all_com)) for m in MODALITIES}
        spec_hat = {m: self.independent_reconstructor[m](spec[m]) for m in MODALITIES}
        return com_hat, spec_hat

    def fuse(self, com: Dict[str, torch.Tensor], spec: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Eq. 18-21 on fused (B, t, d) sequences -> y^ (B, 1)."""
        seq = lambda x: x.transpose(0, 1)  # noqa: E731  -- MulTEncoder is (T, B, d)
        h_com = [self.common_fusion[m](seq(com[m]))[-1] for m in MODALITIES]
        h_spec = [self.cross_fusion[f"{n}_to_{m}"](seq(spec[m]), seq(spec[n]))[-1]
                  for m in MODALITIES for n in others(m)]
        return self.head(torch.cat(h_com + h_spec, dim=-1))

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor,
                text_full: Optional[torch.Tensor] = None, audio_full: Optional[torch.Tensor] = None,
                vision_full: Optional[torch.Tensor] = None) -> Dict[str, object]:
        """``text`` (B, 3, L) token ids/mask/segments, ``audio`` (B, T_a, d_a), ``vision`` (B, T_v, d_v):
        the (corrupted) inputs. The complete inputs ``*_full`` are given for the losses only (all three
        or none). Returns ``{"M": y^ (B, 1)}``, plus, with complete inputs, every tensor the losses need."""
        full = (text_full, audio_full, vision_full)
        if any(x is None for x in full) and any(x is not None for x in full):
            raise ValueError("DAR.forward: pass all of text_full, audio_full, vision_full, or none of them")
        corrupted = self.decouple(text, audio, vision)
        com, spec = corrupted["com"], corrupted["spec"]
        com_hat, spec_hat = self.reconstruct(com, spec)
        fused_com = {m: self.common_gate[m](com_hat[m], com[m]) for m in MODALITIES}
        fused_spec = {m: self.independent_gate[m](spec_hat[m], spec[m]) for m in MODALITIES}
        out: Dict[str, object] = {"M": self.fuse(fused_com, fused_spec)}
        if text_full is None:
            return out

        complete = self.decouple(*full)
        weights = self.pooling_weights(text, com["text"].shape[1])
        out.update(
            corrupted=corrupted,
            complete=complete,
            weights=weights,
            com_hat=com_hat,
            spec_hat=spec_hat,
            restored={m: self.restoration_decoder[m](torch.cat([com[n] for n in others(m)] + [spec[m]], dim=-1))
                      for m in MODALITIES},
            aligned_hat={m: self.reconstruction_decoder[m](torch.cat([com_hat[m], spec_hat[m]], dim=-1))
                         for m in MODALITIES},
            boot=self.boot_head(torch.cat([losses.time_average(complete["com"][m], weights[m]) for m in MODALITIES],
                                          dim=-1)),
        )
        return out

    # ------------------------------------------------------------------ losses
    def loss_terms(self, out: Dict[str, object], labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Every scalar of Eq. 2, 23-24 from a forward with complete inputs: task, boot, sim (=
        sim_com + sim_spec, both also returned), diff, re, recon. The CLUB estimate (diff) runs
        through q_theta with its parameters frozen."""
        if "complete" not in out:
            raise ValueError("DAR.loss_terms needs a forward with text_full/audio_full/vision_full")
        corrupted, complete, weights = out["corrupted"], out["complete"], out["weights"]
        com, spec = corrupted["com"], corrupted["spec"]
        pooled = lambda feats: [losses.time_average(feats[m], weights[m]) for m in MODALITIES]  # noqa: E731
        diff, diagnostics = self.club_terms(com, spec)
        sim_com = losses.common_info_nce(pooled(com), self.tau)
        sim_spec = losses.independent_info_nce(pooled(spec), self.tau)
        target = (lambda x: x.detach()) if self.detach_recon_targets else (lambda x: x)
        pairs = [(out["com_hat"][m], target(complete["com"][m])) for m in MODALITIES]
        pairs += [(out["spec_hat"][m], target(complete["spec"][m])) for m in MODALITIES]
        pairs += [(out["aligned_hat"][m], target(complete["aligned"][m])) for m in MODALITIES]
        return {
            "task": losses.task_loss(out["M"], labels),
            "boot": losses.task_loss(out["boot"], labels),
            "sim": sim_com + sim_spec,
            "sim_com": sim_com,
            "sim_spec": sim_spec,
            "diff": diff,
            "re": losses.restoration_loss([corrupted["aligned"][m] for m in MODALITIES],
                                          [out["restored"][m] for m in MODALITIES]),
            "recon": losses.reconstruction_loss(*zip(*pairs)),
            **diagnostics,
        }

    def club_pair(self, spec: torch.Tensor, com: torch.Tensor) -> tuple:
        """(H~spec, H~com) as q_theta and CLUB see them (``club_input``)."""
        return losses.club_input(spec, self.club_input), losses.club_input(com, self.club_input)

    def club_terms(self, com: Dict[str, torch.Tensor], spec: Dict[str, torch.Tensor]):
        """(L_diff, diagnostics): L_diff through q_theta with its parameters frozen, summed over
        modalities; the diagnostics (:data:`CLUB_DIAGNOSTICS`, 0-d tensors without gradient, means
        over modalities) are the raw features' variances and correlation and q_theta's mean variance."""
        diff, stats = 0.0, []
        with frozen(self.posterior):
            for m in MODALITIES:
                x, y = self.club_pair(spec[m], com[m])
                mean, log_var = self.posterior[m](x)
                diff = diff + losses.club_estimate(mean, log_var, y, self.club_reduction)
                q_var = float(log_var.detach().exp().mean())
                stats.append(dict(losses.feature_statistics(com[m], spec[m]), q_var=q_var))
        diagnostics = {k: torch.tensor(sum(s[k] for s in stats) / len(stats)) for k in CLUB_DIAGNOSTICS}
        return diff, diagnostics

    @staticmethod
    def club_features(out: Dict[str, object]) -> Dict[str, tuple]:
        """{modality: (H~spec, H~com)} detached: what q_theta is fitted on (and CLUB is estimated on)."""
        corrupted = out["corrupted"]
        return {m: (corrupted["spec"][m].detach(), corrupted["com"][m].detach()) for m in MODALITIES}

    def variational_loss(self, out: Dict[str, object], features: Optional[Dict[str, tuple]] = None) -> torch.Tensor:
        """-log q_theta(H~com | H~spec) on detached features, summed over modalities: q_theta's own
        objective (it maximises the likelihood, §3.4), which cannot reach the encoders."""
        features = features or self.club_features(out)
        total = 0.0
        for m, (spec, com) in features.items():
            x, y = self.club_pair(spec, com)
            total = total - losses.gaussian_log_likelihood(*self.posterior[m](x), y, self.club_reduction)
        return total

    @torch.no_grad()
    def club_value(self, features: Dict[str, tuple]) -> float:
        """L_diff (the CLUB estimate summed over modalities) that q_theta gives on ``features``
        ({modality: (H~spec, H~com)}, as :meth:`club_features` returns them)."""
        total = 0.0
        for m, (spec, com) in features.items():
            x, y = self.club_pair(spec, com)
            total += float(losses.club_estimate(*self.posterior[m](x), y, self.club_reduction))
        return total
