"""DERL-style model (from the abstract): hybrid experts disentangle each modality into orthogonal
private and shared spaces, a multi-level reconstruction supervises them, and an importance-aware
fusion weighs the six experts.

The DERL paper (Li et al., arXiv 2602.01833) is public only as an abstract. This is *our* design
from ``shared/specs/derl.md``, consistent with the abstract -- not a reproduction; it is called
"DERL-style (from the abstract)" everywhere.

Data flow for one batch (B samples, modalities m in (l, a, v), d = ``hidden_dim``, T = ``token_len``):

1. backbone: text -> BERT -> Linear(768 -> d); audio/vision -> Linear(d_m -> d); each through a
   2-layer :class:`~dar_mmsa.models.layers.TokenTransformer` that prepends T learnable tokens; the
   T tokens are kept -> X_m (B, T, d);
2. hybrid experts: P_m = Σ_k g^p_k E^p_{m,k}(X_m), S_m = Σ_j g^s_j E^s_j(X_m) with per-sample,
   per-modality routing g = softmax(W mean_tokens(X_m)) over ``private_experts`` experts of m and
   the ``shared_experts`` experts of the shared pool;
3. importance-aware fusion over the experts (P_l, P_a, P_v, S_l, S_a, S_v) pooled over tokens to
   u_e: α = softmax(MLP([u_1..u_6]) + log avail_e), h = Σ α_e u_e, ŷ = MLP(h);
4. training only: L_orth, L_sim, L_bal and the three reconstruction levels (targets from the
   complete input ``*_full``, computed without gradient), see :mod:`dar_mmsa.models.derl_losses`.

``forward(text, audio, vision, present=None, text_full=None, audio_full=None, vision_full=None)``
returns a dict: ``M`` (B, 1) prediction, ``importance`` (B, 6) α in the order of
:data:`EXPERT_NAMES`, ``present`` (B, 3), ``fused`` h (B, d), ``private_routing`` (B, 3, K_p) and
``shared_routing`` (B, 3, K_s) (None when the branch is off or plain projections are used), and,
in training mode, ``aux_losses`` {name: unweighted scalar}.

Choices where the spec is silent (each a config key where it is a number or a switch):

* Wholly missing modality: detected from the input (:func:`detect_present`): text is missing when
  every real token other than position 0 and the last real token is [UNK] (a text with no such
  token counts as missing too); audio/vision when every frame is all-zero. ``present`` overrides it.
  If detection finds no modality in a sample, all three are treated as present (there is nothing
  better to trust, and α stays well defined); an explicit ``present`` row without any modality is
  an error.
* The importance MLP sees u_e zeroed for unavailable experts, so α of the available ones does not
  depend on the features of a missing modality. Gate MLP: Linear(6d -> ``fusion_hidden``) -> GELU
  -> Linear(-> 6); regressor: Linear(d -> ``regressor_hidden``) -> GELU -> Linear(-> 1).
* Shared pool routing: one router per modality into the same pool.
* Expert: LN(x + FF(x)), FF = Linear(d -> ``expert_hidden``) -> GELU -> Linear(-> d) (spec: 2d).
* Decoders D_m: token-wise Linear(2d -> ``decoder_hidden``) -> GELU -> Linear(-> d), one per
  modality, shared by levels 1 and 2; a disabled branch enters them as zeros.
* Level 2 borrows mean_{n≠m} S_n over the *present* other modalities; a (sample, m) with none is
  left out. Levels 1 and 2 cover every modality, missing ones included (that is what they teach).
* Level 3 is a direct MSE(h, sg(h̄)) with no decoder, so it pulls the fused vector itself towards
  that of the complete input.
* L_orth: each ‖·‖_F² term divided by the batch size (see ``derl_losses``).
* L_bal: K Σ_j ḡ_j² − 1 over all (sample, modality) routings into the shared pool; on by default.
* Ablations: ``use_experts`` false replaces both expert banks by plain token-wise projections
  (private: one Linear per modality; shared: one Linear for all modalities) with no routing and no
  L_bal; ``use_private`` / ``use_shared`` false removes that space (its experts get α = 0, its
  loss terms vanish; level 2 needs the shared space); ``fusion`` "concat" is
  h = Linear(6d -> d)(concat of available u_e), "mean" the uniform average of available u_e; both
  report α = uniform over the available experts (not learned).
* No dropout anywhere: the complete-input pass that makes the targets runs in training mode and
  must be deterministic.
* Learnable positions of the token encoders start as N(0, ``position_init_std``²) = N(0, 0.02²)
  (the layer's own N(0, 1) made every token mostly sample-independent, so the head saw almost no
  between-sample variation; docs/models.md, DERL, issue 14). With ``uniform_initial_importance``
  the importance scorer's last layer starts at zero: α starts uniform over the available experts.
* Training (``dar_mmsa.training.derl``): the per-epoch rate/drop tables come from
  ``numpy.random.default_rng(epoch_seed(run seed, epoch))``, the complete half is drawn
  independently of the modality drop, a sample that would lose all three modalities keeps one
  chosen uniformly; validation ``Loss`` is the task MSE; AdamW over the shared parameter groups
  (BERT at ``bert_learning_rate`` 5e-5, the rest at ``learning_rate`` 1e-3, no decay on biases and
  norms), the shared warm-up + cosine schedule (``lr_schedule``), ``orth_weight`` 0.01 (0.1 let
  L_orth's gradient reach the encoders 6x, BERT 44x harder than the task's); no clipping by
  default (``grad_clip``); up to ``max_epochs`` 100 with ``early_stop`` 10.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import nn

from ..data.corruption import UNK_ID
from ..errors import ConfigError, DataError
from ..registry import register_model
from . import derl_losses as losses
from .layers import FeedForward, TokenTransformer
from .text import BertEncoder

MODALITIES = ("text", "audio", "vision")
EXPERT_NAMES = ("P_l", "P_a", "P_v", "S_l", "S_a", "S_v")
FUSIONS = ("importance", "concat", "mean")

_HYPERPARAMETERS = {
    "pretrained": "bert-base-uncased",
    "use_finetune": True,
    # backbone
    "hidden_dim": 128,
    "token_len": 8,
    "encoder_depth": 2,
    "encoder_heads": 8,
    "encoder_mlp_dim": 128,
    "encoder_dim_head": 64,
    "position_init_std": 0.02,
    # hybrid experts
    "private_experts": 2,
    "shared_experts": 4,
    "expert_hidden": 256,
    # heads
    "decoder_hidden": 128,
    "fusion_hidden": 128,
    "regressor_hidden": 128,
    # ablation switches
    "use_experts": True,
    "use_private": True,
    "use_shared": True,
    "use_orth_loss": True,
    "use_rec_feature": True,
    "use_rec_cross": True,
    "use_rec_representation": True,
    "use_balance_loss": True,
    "fusion": "importance",
    "uniform_initial_importance": True,
    # loss weights (of the auxiliary terms; the task MSE has weight 1)
    "orth_weight": 0.01,
    "sim_weight": 0.1,
    "rec_weight": 0.1,
    "balance_weight": 0.01,
    "aux_warmup_epochs": 0,
    # training
    "batch_size": 64,
    "learning_rate": 1e-3,
    "bert_learning_rate": 5e-5,
    "weight_decay": 1e-4,
    "lr_schedule": "warmup_cosine",
    "grad_clip": 0.0,
    "train_complete_fraction": 0.5,
    "modality_drop_prob": 0.3,
    "valid_missing_rate": 0.5,
}

DEFAULTS = {
    "commonParams": {
        "need_data_aligned": False,
        "need_model_aligned": False,
        "need_normalized": False,
        "use_bert": True,
        "early_stop": 10,
        "max_epochs": 100,
    },
    "datasetParams": {"mosi": dict(_HYPERPARAMETERS), "mosei": dict(_HYPERPARAMETERS),
                      "sims": dict(_HYPERPARAMETERS, pretrained="bert-base-chinese")},
}

# What a tuning search may try (run_benchmark.py --experiment tune): optimisation and loss weights.
SEARCH_SPACE = {
    "learning_rate": [3e-4, 1e-3, 3e-3],
    "bert_learning_rate": [1e-5, 3e-5, 5e-5],
    "weight_decay": [0.0, 1e-4, 1e-3],
    "batch_size": [16, 32, 64],
    "orth_weight": [0.001, 0.01, 0.1],
    "sim_weight": [0.05, 0.1, 0.3],
    "rec_weight": [0.05, 0.1, 0.3],
}


# ----------------------------------------------------------------------------- missing modalities
def detect_present(text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor) -> torch.Tensor:
    """(B, 3) bool over (text, audio, vision): False where the modality is wholly missing.

    Text is missing when every real token other than position 0 ([CLS]) and the last real token
    ([SEP]) is [UNK] -- what ``drop_modalities`` leaves -- or when there is no such token at all.
    Audio/vision are missing when every frame is all-zero.
    """
    ids, real = text[:, 0].long(), text[:, 1] > 0
    positions = torch.arange(ids.shape[1], device=ids.device)
    last_real = real.sum(dim=1, keepdim=True) - 1
    content = real & (positions > 0) & (positions != last_real)
    text_present = (content & (ids != UNK_ID)).any(dim=1)
    audio_present = (audio != 0).flatten(1).any(dim=1)
    vision_present = (vision != 0).flatten(1).any(dim=1)
    return torch.stack([text_present, audio_present, vision_present], dim=1)


def resolve_present(detected: torch.Tensor, given=None) -> torch.Tensor:
    """The (B, 3) presence the model uses: ``given`` when passed (validated), else ``detected``
    with samples where nothing was detected treated as complete."""
    if given is None:
        nothing = ~detected.any(dim=1, keepdim=True)
        return detected | nothing
    given = torch.as_tensor(np.asarray(given.cpu() if isinstance(given, torch.Tensor) else given))
    if given.shape != detected.shape:
        raise DataError(f"present must have shape {tuple(detected.shape)} (batch, [text, audio, vision]), "
                        f"got {tuple(given.shape)}")
    given = given.to(device=detected.device, dtype=torch.bool)
    if not bool(given.any(dim=1).all()):
        raise DataError("present has a sample with no modality: every row needs at least one True")
    return given


def expert_availability(present: torch.Tensor, use_private: bool, use_shared: bool) -> torch.Tensor:
    """(B, 6) bool in :data:`EXPERT_NAMES` order: an expert is available when its branch is on and
    its modality present."""
    return torch.cat([present & use_private, present & use_shared], dim=1)


def mean_of_other_modalities(shared: torch.Tensor, present: torch.Tensor):
    """For each modality m the mean of S_n over the present n ≠ m.

    Args:
        shared: (B, M, T, d); present: (B, M) bool.
    Returns:
        (borrowed (B, M, T, d), valid (B, M) bool: at least one other modality was present).
    """
    weights = present.to(shared.dtype)
    weighted = shared * weights[..., None, None]
    others = weighted.sum(dim=1, keepdim=True) - weighted
    count = weights.sum(dim=1, keepdim=True) - weights
    return others / count.clamp_min(1.0)[..., None, None], count > 0


# ----------------------------------------------------------------------------- blocks
class ModalityEncoder(nn.Module):
    """Linear(d_in -> d), then a TokenTransformer that prepends ``token_len`` learnable tokens;
    returns those tokens (B, token_len, d).

    ``position_std`` (when given) re-initialises the learnable positions as N(0, position_std²)
    (the layer's own init is N(0, 1)); see ``position_init_std`` in the module docstring.
    """

    def __init__(self, input_dim: int, num_frames: int, dim: int, token_len: int, depth: int, heads: int,
                 mlp_dim: int, dim_head: int, position_std: Optional[float] = None):
        super().__init__()
        self.token_len = token_len
        self.project = nn.Linear(input_dim, dim)
        self.tokens = TokenTransformer(num_frames, token_len, dim, depth, heads, mlp_dim, dim_head)
        if position_std is not None:
            nn.init.normal_(self.tokens.pos_embedding, std=float(position_std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(self.project(x))[:, : self.token_len]


class Expert(nn.Module):
    """Token-wise LN(x + FF(x)) with FF = Linear(d -> hidden) -> GELU -> Linear(hidden -> d)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.ff = FeedForward(dim, hidden)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.ff(x))


class Router(nn.Module):
    """Per-sample routing weights softmax(W mean_tokens(x)): (B, T, d) -> (B, K), rows sum to 1."""

    def __init__(self, dim: int, num_experts: int):
        super().__init__()
        self.gate = nn.Linear(dim, num_experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.gate(x.mean(dim=1)), dim=-1)


class ExpertBank(nn.Module):
    """K experts mixed per sample: Σ_k g_k E_k(x) for tokens (B, T, d) and weights g (B, K)."""

    def __init__(self, dim: int, hidden: int, num_experts: int):
        super().__init__()
        self.experts = nn.ModuleList(Expert(dim, hidden) for _ in range(num_experts))

    def forward(self, x: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        outputs = torch.stack([expert(x) for expert in self.experts], dim=1)
        return torch.einsum("bk,bktd->btd", gates, outputs)


@dataclass
class Disentangled:
    """Private and shared token features (B, M, T, d) and their routing weights (B, M, K);
    a branch that is switched off is None."""

    private: Optional[torch.Tensor]
    shared: Optional[torch.Tensor]
    private_gates: Optional[torch.Tensor] = None
    shared_gates: Optional[torch.Tensor] = None


class HybridExperts(nn.Module):
    """K_p private experts per modality and one pool of K_s shared experts, each modality with its
    own router into its private experts and into the shared pool."""

    def __init__(self, dim: int, hidden: int, modalities: int, private_experts: int, shared_experts: int,
                 use_private: bool = True, use_shared: bool = True):
        super().__init__()
        self.private = self.private_routers = self.shared = self.shared_routers = None
        if use_private:
            self.private = nn.ModuleList(ExpertBank(dim, hidden, private_experts) for _ in range(modalities))
            self.private_routers = nn.ModuleList(Router(dim, private_experts) for _ in range(modalities))
        if use_shared:
            self.shared = ExpertBank(dim, hidden, shared_experts)
            self.shared_routers = nn.ModuleList(Router(dim, shared_experts) for _ in range(modalities))

    def forward(self, tokens: List[torch.Tensor]) -> Disentangled:
        out = Disentangled(None, None)
        if self.private is not None:
            gates = [router(x) for router, x in zip(self.private_routers, tokens)]
            out.private = torch.stack([bank(x, g) for bank, x, g in zip(self.private, tokens, gates)], dim=1)
            out.private_gates = torch.stack(gates, dim=1)
        if self.shared is not None:
            gates = [router(x) for router, x in zip(self.shared_routers, tokens)]
            out.shared = torch.stack([self.shared(x, g) for x, g in zip(tokens, gates)], dim=1)
            out.shared_gates = torch.stack(gates, dim=1)
        return out


class PlainProjections(nn.Module):
    """The "w/o experts" ablation: private = one Linear per modality, shared = one Linear used by
    every modality; no routing."""

    def __init__(self, dim: int, modalities: int, use_private: bool = True, use_shared: bool = True):
        super().__init__()
        self.private = nn.ModuleList(nn.Linear(dim, dim) for _ in range(modalities)) if use_private else None
        self.shared = nn.Linear(dim, dim) if use_shared else None

    def forward(self, tokens: List[torch.Tensor]) -> Disentangled:
        private = torch.stack([p(x) for p, x in zip(self.private, tokens)], dim=1) if self.private is not None else None
        shared = torch.stack([self.shared(x) for x in tokens], dim=1) if self.shared is not None else None
        return Disentangled(private, shared)


def uniform_over_available(available: torch.Tensor) -> torch.Tensor:
    weights = available.float()
    return weights / weights.sum(dim=1, keepdim=True).clamp_min(1.0)


class ImportanceFusion(nn.Module):
    """α = softmax(MLP([u_1..u_E]) + log avail), h = Σ α_e u_e; α_e is exactly 0 where avail_e = 0.

    With ``uniform_init`` the scorer's last layer starts at zero, so α starts uniform over the
    available experts and departs from it only as the task gradient asks.
    """

    def __init__(self, dim: int, num_experts: int, hidden: int, uniform_init: bool = False):
        super().__init__()
        self.scorer = nn.Sequential(nn.Linear(num_experts * dim, hidden), nn.GELU(), nn.Linear(hidden, num_experts))
        if uniform_init:
            nn.init.zeros_(self.scorer[-1].weight)
            nn.init.zeros_(self.scorer[-1].bias)

    def forward(self, experts: torch.Tensor, available: torch.Tensor):
        visible = experts * available[..., None].to(experts.dtype)
        logits = self.scorer(visible.flatten(1)).masked_fill(~available, float("-inf"))
        weights = torch.softmax(logits, dim=-1)
        return torch.einsum("be,bed->bd", weights, experts), weights


class ConcatFusion(nn.Module):
    """h = Linear(E·d -> d)(concatenated available u_e); reports uniform weights over available experts."""

    def __init__(self, dim: int, num_experts: int):
        super().__init__()
        self.project = nn.Linear(num_experts * dim, dim)

    def forward(self, experts: torch.Tensor, available: torch.Tensor):
        visible = experts * available[..., None].to(experts.dtype)
        return self.project(visible.flatten(1)), uniform_over_available(available)


class MeanFusion(nn.Module):
    """h = uniform average of the available u_e."""

    def forward(self, experts: torch.Tensor, available: torch.Tensor):
        weights = uniform_over_available(available).to(experts.dtype)
        return torch.einsum("be,bed->bd", weights, experts), weights


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))


# ----------------------------------------------------------------------------- config
def derl_settings(args) -> dict:
    """The model's hyperparameters: the dataset's DEFAULTS overlaid with ``args``, validated."""
    dataset = str(args.get("dataset_name") or "mosi").lower()
    settings = dict(DEFAULTS["datasetParams"].get(dataset, _HYPERPARAMETERS))
    settings.update({k: v for k, v in dict(args).items() if v is not None})
    fusion = str(settings["fusion"]).lower()
    if fusion not in FUSIONS:
        raise ConfigError(f"derl fusion '{settings['fusion']}' is unknown: use one of {', '.join(FUSIONS)}")
    settings["fusion"] = fusion
    if not settings["use_private"] and not settings["use_shared"]:
        raise ConfigError("derl needs use_private or use_shared to be true: switch at least one branch on")
    for key in ("hidden_dim", "token_len", "encoder_depth", "encoder_heads", "encoder_mlp_dim", "encoder_dim_head",
                "private_experts", "shared_experts", "expert_hidden", "decoder_hidden", "fusion_hidden",
                "regressor_hidden"):
        if int(settings[key]) < 1:
            raise ConfigError(f"derl {key} must be a positive integer, got {settings[key]}: fix the config")
    if not float(settings["position_init_std"]) > 0:
        raise ConfigError(f"derl position_init_std must be > 0 (1.0 is the layer's own N(0, 1)), "
                          f"got {settings['position_init_std']}")
    for key in ("feature_dims", "seq_lens"):
        if key not in settings or len(settings[key]) != 3:
            raise ConfigError(f"derl needs {key} = [text, audio, vision] in the config (MMSA's dataset params)")
    return settings


# ----------------------------------------------------------------------------- model
@register_model(
    "derl",
    trainer="dar_mmsa.training.derl:DERLTrainer",
    defaults=DEFAULTS,
    search_space=SEARCH_SPACE,
    description="DERL-style (from the abstract): hybrid private/shared experts, multi-level "
                "reconstruction, importance-aware fusion; our design, not a reproduction",
    display="DERL-style (from the abstract)",
)
class DERL(nn.Module):
    """DERL-style (from the abstract); see the module docstring for the design and its choices."""

    def __init__(self, args):
        super().__init__()
        s = derl_settings(args)
        self.settings = s
        d, self.token_len = int(s["hidden_dim"]), int(s["token_len"])
        self.use_private, self.use_shared = bool(s["use_private"]), bool(s["use_shared"])
        self.use_experts = bool(s["use_experts"])
        self.feature_dims = [int(x) for x in s["feature_dims"]]
        self.seq_lens = [int(x) for x in s["seq_lens"]]
        encoder = dict(dim=d, token_len=self.token_len, depth=int(s["encoder_depth"]), heads=int(s["encoder_heads"]),
                       mlp_dim=int(s["encoder_mlp_dim"]), dim_head=int(s["encoder_dim_head"]),
                       position_std=float(s["position_init_std"]))

        self.bert = BertEncoder(s["pretrained"], finetune=bool(s.get("use_finetune", True)))
        self.encoders = nn.ModuleList([
            ModalityEncoder(self.bert.hidden_size, self.seq_lens[0], **encoder),
            ModalityEncoder(self.feature_dims[1], self.seq_lens[1], **encoder),
            ModalityEncoder(self.feature_dims[2], self.seq_lens[2], **encoder),
        ])
        if self.use_experts:
            self.experts = HybridExperts(d, int(s["expert_hidden"]), len(MODALITIES), int(s["private_experts"]),
                                         int(s["shared_experts"]), self.use_private, self.use_shared)
        else:
            self.experts = PlainProjections(d, len(MODALITIES), self.use_private, self.use_shared)
        self.decoders = nn.ModuleList(mlp(2 * d, int(s["decoder_hidden"]), d) for _ in MODALITIES)
        if s["fusion"] == "importance":
            self.fusion = ImportanceFusion(d, len(EXPERT_NAMES), int(s["fusion_hidden"]),
                                           uniform_init=bool(s["uniform_initial_importance"]))
        elif s["fusion"] == "concat":
            self.fusion = ConcatFusion(d, len(EXPERT_NAMES))
        else:
            self.fusion = MeanFusion()
        self.regressor = mlp(d, int(s["regressor_hidden"]), 1)
        self.loss_switches = {name: bool(s[f"use_{name}"]) for name in
                              ("orth_loss", "rec_feature", "rec_cross", "rec_representation", "balance_loss")}

    # ------------------------------------------------------------------ pieces
    def check_inputs(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor) -> None:
        if text.dim() != 3 or text.shape[1] != 3:
            raise DataError(f"derl expects text as (batch, 3, length) BERT ids/mask/segments, got {tuple(text.shape)}: "
                            f"use MMSA's text_bert features (use_bert true)")
        for col, name, x in ((1, "audio", audio), (2, "vision", vision)):
            if x.dim() != 3 or x.shape[-1] != self.feature_dims[col]:
                raise DataError(f"derl {name} must be (batch, frames, {self.feature_dims[col]}), got {tuple(x.shape)}: "
                                f"feature_dims in the config must match the data")
        lengths = (text.shape[-1], audio.shape[1], vision.shape[1])
        for col, (name, length) in enumerate(zip(MODALITIES, lengths)):
            if length > self.seq_lens[col]:
                raise DataError(f"derl {name} has {length} steps but the model was built for seq_lens[{col}] = "
                                f"{self.seq_lens[col]}: set seq_lens from the data (MMSA's loader does)")

    def encode(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor) -> List[torch.Tensor]:
        """The backbone: X_m (B, T, d) for text, audio, vision."""
        inputs = (self.bert(text), audio, vision)
        return [encoder(x) for encoder, x in zip(self.encoders, inputs)]

    def pooled_experts(self, parts: Disentangled) -> torch.Tensor:
        """u_e (B, 6, d) in EXPERT_NAMES order; a switched-off branch gives zeros."""
        reference = parts.private if parts.private is not None else parts.shared
        private = parts.private if parts.private is not None else torch.zeros_like(reference)
        shared = parts.shared if parts.shared is not None else torch.zeros_like(reference)
        return torch.cat([private.mean(dim=2), shared.mean(dim=2)], dim=1)

    def fuse(self, parts: Disentangled, present: torch.Tensor):
        available = expert_availability(present, self.use_private, self.use_shared)
        return self.fusion(self.pooled_experts(parts), available)

    def decode(self, private: Optional[torch.Tensor], shared: Optional[torch.Tensor]) -> torch.Tensor:
        """D_m([P_m; S_m]) per modality on (B, M, T, d) inputs (None -> zeros)."""
        reference = private if private is not None else shared
        private = private if private is not None else torch.zeros_like(reference)
        shared = shared if shared is not None else torch.zeros_like(reference)
        joint = torch.cat([private, shared], dim=-1)
        return torch.stack([decoder(joint[:, m]) for m, decoder in enumerate(self.decoders)], dim=1)

    def regularisers(self, parts: Disentangled, present: torch.Tensor) -> Dict[str, torch.Tensor]:
        out = {}
        private = list(parts.private.mean(dim=2).unbind(1)) if parts.private is not None else None
        shared = list(parts.shared.mean(dim=2).unbind(1)) if parts.shared is not None else None
        if self.loss_switches["orth_loss"] and private is not None:
            out["orth"] = losses.orthogonality_loss(private, shared)
        if parts.shared is not None:
            out["sim"] = losses.shared_alignment_loss(parts.shared.mean(dim=2), present)
        if self.loss_switches["balance_loss"] and parts.shared_gates is not None:
            out["balance"] = losses.load_balance_loss(parts.shared_gates.flatten(0, 1))
        return out

    def reconstruction_losses(self, parts: Disentangled, present: torch.Tensor, fused: torch.Tensor,
                              complete_inputs) -> Dict[str, torch.Tensor]:
        """The three levels, targets from the complete input computed without gradient."""
        with torch.no_grad():
            complete_tokens = self.encode(*complete_inputs)
            complete_parts = self.experts(complete_tokens)
            complete_present = resolve_present(detect_present(*complete_inputs))
            complete_fused, _ = self.fuse(complete_parts, complete_present)
            targets = torch.stack(complete_tokens, dim=1)
        out = {}
        if self.loss_switches["rec_feature"]:
            out["rec_feature"] = losses.feature_reconstruction_loss(self.decode(parts.private, parts.shared), targets)
        if self.loss_switches["rec_cross"] and parts.shared is not None:
            borrowed, valid = mean_of_other_modalities(parts.shared, present)
            decoded = self.decode(parts.private, borrowed)
            out["rec_cross"] = losses.cross_modal_reconstruction_loss(decoded, targets, valid)
        if self.loss_switches["rec_representation"]:
            out["rec_representation"] = losses.representation_reconstruction_loss(fused, complete_fused)
        return out

    # ------------------------------------------------------------------ forward
    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor, *args, present=None,
                text_full: Optional[torch.Tensor] = None, audio_full: Optional[torch.Tensor] = None,
                vision_full: Optional[torch.Tensor] = None, with_losses: Optional[bool] = None,
                **kwargs) -> Dict[str, torch.Tensor]:
        self.check_inputs(text, audio, vision)
        present = resolve_present(detect_present(text, audio, vision), present)
        parts = self.experts(self.encode(text, audio, vision))
        fused, importance = self.fuse(parts, present)
        out = {
            "M": self.regressor(fused),
            "importance": importance,
            "present": present,
            "fused": fused,
            "private_routing": parts.private_gates,
            "shared_routing": parts.shared_gates,
        }
        if self.training if with_losses is None else with_losses:
            out["aux_losses"] = self.regularisers(parts, present)
            complete = (text_full, audio_full, vision_full)
            if any(x is not None for x in complete):
                if any(x is None for x in complete):
                    raise DataError("derl needs all of text_full, audio_full and vision_full, or none of them")
                self.check_inputs(*complete)
                out["aux_losses"].update(self.reconstruction_losses(parts, present, fused, complete))
        return out
