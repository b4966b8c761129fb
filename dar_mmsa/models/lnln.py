"""LNLN (Language-dominated Noise-resistant Learning Network, Zhang, Wang & Yu, NeurIPS 2024).

Spec: ``shared/specs/baselines.md`` §4 (the authors' repository, ``Haoyu-ha/LNLN``). Each modality
is summarised into 8 tokens (h_1_l, h_1_a, h_1_v). Dominant Modality Correction (DMC) estimates
the completeness w of the language input, builds a proxy dominant feature from audio, vision and a
learnable h_p, and mixes them: h_1_d = (1 - w) * GRL(h_1_p) + w * h_1_l. Dominant Modality based
Multimodal Learning (DMML) is ALMT's language-guided hyper-modality learning on h_1_d, with a
regression head on the mean of the fused tokens 1..8. During training a reconstructor and an
effectiveness discriminator add the auxiliary losses (``dar_mmsa.training.lnln``).

MMSA's contract: ``forward(text, audio, vision)`` takes the (possibly corrupted) inputs, in MMSA's
order; the reference's ``forward(complete_input, incomplete_input)`` maps to the keyword arguments
``text_full``/``audio_full``/``vision_full`` (the complete inputs, training only). It returns a dict:
``sentiment_preds`` (B, 1) (also as ``M``, what MMSA's trainers read), ``w`` (B, 1), and
``effectiveness_discriminator_out`` (16B, 2), ``rec_feats`` (B, 24, 128), ``complete_feats``
(B, 24, 128), the last three None unless all complete inputs are given.
Parameters excluding BERT: MOSI 6,483,012; MOSEI 7,102,404.

The reference's YAML config (``base``/``model`` sections) is flattened into MMSA's schema:

=============================================================  ==================================
reference key                                                  our key
=============================================================  ==================================
base.lr / weight_decay / batch_size                            learning_rate / weight_decay / batch_size
base.n_epochs                                                  max_epochs (also shapes the schedule)
base.alpha / beta / gamma / sigma                              completeness_weight / adversarial_weight /
                                                               reconstruction_weight / sentiment_weight
base.missing_rate_eval_test                                    valid_missing_rate
base.seed (also the reference's mask seed)                     the run seed; mask_seed (override)
feature_extractor.bert_pretrained                              pretrained
feature_extractor.input_dims [l, v, a]                         feature_dims [text, audio, vision]
feature_extractor.input_length [l, v, a]                       feature_length [text, audio, vision]
feature_extractor.token_length, every *.input_length/          token_length (one value: the
  source_length/tgt_length of 8 (proxy: 24 = 3 x 8)              reference hard-codes the 8 anyway)
every *.input_dim and feature_extractor.hidden_dims            dim
every Transformer *.hidden_dim                                 mlp_dim
feature_extractor.depth / heads                                extractor_depth / extractor_heads
dmc.proxy_dominant_feature_generator.depth / heads             proxy_depth / proxy_heads
dmc.completeness_check.token_length / depth / heads            completeness_token_length /
                                                               completeness_depth / completeness_heads
dmc.effectiveness_discriminator.hidden_dim                     discriminator_hidden_dim
reconstructor.depth / heads                                    reconstructor_depth / reconstructor_heads
dmml.language_encoder.depth / heads                            language_encoder_depth / language_encoder_heads
dmml.hyper_modality_learning.depth / heads                     hyper_depth / hyper_heads
dmml.fuison_transformer.depth / heads                          fusion_depth / fusion_heads
=============================================================  ==================================

Dropped because the reference ignores them: ``dmml.language_encoder.token_length``,
``dmml.hyper_modality_learning.hidden_dim``; fixed in code as in the reference: the discriminator's
2 outputs, the completeness MLP's 64 hidden units and LeakyReLU slope 0.1, the regression's 1 output.

Choices (also in ``docs/models.md``):

* ``w`` is always (B, 1); the reference's squeeze makes it (1,) for a batch of one (harmless there).
* The completeness targets of the reconstruction loss (``complete_feats``) are not detached and
  reuse the same extractors and a second BERT pass, as in the reference.
* Positional lengths come from ``feature_length``; data longer than that fails at construction
  (ConfigError), shorter data works.
* Training protocol switches (trainer, ``dar_mmsa.training.lnln``): ``checkpoint_selection``
  ("valid_loss" by default, the clean protocol; "test_metric" reproduces the reference's test-set
  selection for one ``checkpoint_metric``), ``mask_seed`` (null: masks seeded by the run seed;
  1111 reproduces the reference), ``skip_zero_lr_epoch`` (false: the reference's lr-0 first epoch).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import register_model
from .almt import check_config
from .layers import CrossTransformer, HyperModalityLearning, TokenEmbedding, TokenTransformer
from .text import BertEncoder

COMPLETENESS_HIDDEN = 64
LEAKY_SLOPE = 0.1
DISCRIMINATOR_CLASSES = 2  # 1: a corrected dominant feature h_1_d, 0: a complete-language feature
MODALITIES = ("text", "audio", "vision")

_ARCHITECTURE = {
    "transformers": "bert",
    "pretrained": "bert-base-uncased",
    "learning_rate": 0.0001,
    "weight_decay": 0.0001,
    "batch_size": 64,
    "dim": 128,
    "mlp_dim": 128,
    "token_length": 8,
    "extractor_depth": 2,
    "extractor_heads": 8,
    "proxy_depth": 2,
    "proxy_heads": 8,
    "completeness_token_length": 1,
    "completeness_depth": 2,
    "completeness_heads": 8,
    "discriminator_hidden_dim": 64,
    "reconstructor_depth": 2,
    "reconstructor_heads": 8,
    "language_encoder_depth": 2,
    "language_encoder_heads": 8,
    "hyper_depth": 3,
    "hyper_heads": 8,
    "fusion_heads": 8,
}

DEFAULTS = {
    "commonParams": {
        "need_data_aligned": False,
        "need_model_aligned": False,
        "need_normalized": False,
        "use_bert": True,
        "use_finetune": True,
        "max_epochs": 200,  # a fixed number of epochs, also the schedule's length
        "early_stop": 200,  # = max_epochs: the reference never stops early
        "skip_zero_lr_epoch": False,
        "completeness_weight": 0.9,
        "adversarial_weight": 0.8,
        "reconstruction_weight": 0.1,
        "sentiment_weight": 1.0,
        "valid_missing_rate": 0.5,
        "checkpoint_selection": "valid_loss",  # or "test_metric" (the reference's test-set selection)
        "checkpoint_metric": "Non0_acc_2",  # used by "test_metric" only (the reference's key_eval)
        "mask_seed": None,  # null: the run seed; 1111 reproduces the reference's fixed masks
    },
    "datasetParams": {
        "mosi": dict(_ARCHITECTURE, feature_dims=[768, 5, 20], feature_length=[50, 375, 500], fusion_depth=2),
        "mosei": dict(_ARCHITECTURE, feature_dims=[768, 74, 35], feature_length=[50, 500, 500], fusion_depth=4),
        # MOSI's settings with SIMS's sizes and BERT (docs/models.md)
        "sims": dict(_ARCHITECTURE, pretrained="bert-base-chinese", feature_dims=[768, 33, 709],
                     feature_length=[39, 400, 55], fusion_depth=2),
    },
}

# What a tuning search may try (run_benchmark.py --experiment tune): optimisation only, the loss
# weights stay the reference's.
SEARCH_SPACE = {
    "learning_rate": [3e-5, 1e-4, 3e-4, 1e-3],
    "weight_decay": [0.0, 1e-4, 1e-3],
    "batch_size": [16, 32, 64],
}

REQUIRED_KEYS = ("pretrained", "feature_dims", "feature_length", "dim", "mlp_dim", "token_length", "extractor_depth",
                 "extractor_heads", "proxy_depth", "proxy_heads", "completeness_token_length", "completeness_depth",
                 "completeness_heads", "discriminator_hidden_dim", "reconstructor_depth", "reconstructor_heads",
                 "language_encoder_depth", "language_encoder_heads", "hyper_depth", "hyper_heads", "fusion_depth",
                 "fusion_heads")


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.alpha * grad, None


class GradientReversal(nn.Module):
    """Identity forward; the gradient times ``-alpha`` backward (Ganin & Lempitsky, 2015)."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ReverseGradient.apply(x, self.alpha)


class CompletenessCheck(nn.Module):
    """w in (0, 1), the estimated completeness of the language tokens: a token Transformer with one
    prepended token, then Linear -> LeakyReLU -> Linear -> sigmoid on that token. (B, K, d) -> (B, 1)."""

    def __init__(self, tokens: int, extra_tokens: int, dim: int, depth: int, heads: int, mlp_dim: int):
        super().__init__()
        self.encoder = TokenTransformer(tokens, extra_tokens, dim, depth, heads, mlp_dim)
        self.head = nn.Sequential(nn.Linear(dim, COMPLETENESS_HIDDEN), nn.LeakyReLU(LEAKY_SLOPE),
                                  nn.Linear(COMPLETENESS_HIDDEN, 1), nn.Sigmoid())

    def forward(self, h_l: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(h_l)[:, 0])


class ProxyDominantFeatureGenerator(nn.Module):
    """h_1_p: the ``tokens`` new tokens of a token Transformer over [h_p; h_1_a; h_1_v], where h_p
    is a learnable (1, tokens, dim) parameter initialised to ones."""

    def __init__(self, tokens: int, dim: int, depth: int, heads: int, mlp_dim: int):
        super().__init__()
        self.tokens = tokens
        self.h_p = nn.Parameter(torch.ones(1, tokens, dim))
        self.encoder = TokenTransformer(3 * tokens, tokens, dim, depth, heads, mlp_dim)

    def forward(self, h_a: torch.Tensor, h_v: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.h_p.expand(h_a.shape[0], -1, -1), h_a, h_v], dim=1)
        return self.encoder(x)[:, : self.tokens]


class DominantModalityCorrection(nn.Module):
    """DMC: h_1_d = (1 - w) * GRL(h_1_p) + w * h_1_l. Returns (h_1_d, w)."""

    def __init__(self, tokens: int, dim: int, mlp_dim: int, *, completeness_tokens: int, completeness_depth: int,
                 completeness_heads: int, proxy_depth: int, proxy_heads: int):
        super().__init__()
        self.completeness_check = CompletenessCheck(tokens, completeness_tokens, dim, completeness_depth,
                                                    completeness_heads, mlp_dim)
        self.proxy_generator = ProxyDominantFeatureGenerator(tokens, dim, proxy_depth, proxy_heads, mlp_dim)
        self.gradient_reversal = GradientReversal(1.0)

    def forward(self, h_l: torch.Tensor, h_a: torch.Tensor, h_v: torch.Tensor):
        w = self.completeness_check(h_l)
        h_p = self.gradient_reversal(self.proxy_generator(h_a, h_v))
        weight = w.view(-1, 1, 1)
        return (1 - weight) * h_p + weight * h_l, w


class DominantModalityLearning(nn.Module):
    """DMML: a language encoder on h_1_d keeps its states; hyper-modality learning (layer i guided by
    state i) over audio and vision; a cross Transformer from the hyper-modality stream to the last
    state; Linear on the mean of the fused tokens 1.. (not the prepended token). -> (B, 1)."""

    def __init__(self, tokens: int, dim: int, mlp_dim: int, *, encoder_depth: int, encoder_heads: int,
                 hyper_depth: int, hyper_heads: int, fusion_depth: int, fusion_heads: int):
        super().__init__()
        self.language_encoder = TokenTransformer(tokens, None, dim, encoder_depth, encoder_heads, mlp_dim)
        self.h_hyper = nn.Parameter(torch.ones(1, tokens, dim))
        self.hyper_modality = HyperModalityLearning(dim, hyper_depth, hyper_heads)
        self.fusion = CrossTransformer(tokens, tokens, dim, fusion_depth, fusion_heads, mlp_dim)
        self.regression = nn.Linear(dim, 1)

    def forward(self, h_d: torch.Tensor, h_a: torch.Tensor, h_v: torch.Tensor) -> torch.Tensor:
        states = self.language_encoder(h_d, save_hidden=True)
        h_hyper = self.hyper_modality(states, h_a, h_v, self.h_hyper.expand(h_d.shape[0], -1, -1))
        fused = self.fusion(h_hyper, states[-1])
        return self.regression(fused[:, 1:].mean(dim=1))


class Reconstructor(nn.Module):
    """One token Transformer per modality; returns the reconstructions concatenated as [a, v, l]."""

    def __init__(self, tokens: int, dim: int, depth: int, heads: int, mlp_dim: int):
        super().__init__()
        self.decoders = nn.ModuleDict({m: TokenTransformer(tokens, None, dim, depth, heads, mlp_dim)
                                       for m in ("audio", "vision", "text")})

    def forward(self, h_a: torch.Tensor, h_v: torch.Tensor, h_l: torch.Tensor) -> torch.Tensor:
        inputs = {"audio": h_a, "vision": h_v, "text": h_l}
        return torch.cat([self.decoders[m](inputs[m]) for m in ("audio", "vision", "text")], dim=1)


class EffectivenessDiscriminator(nn.Sequential):
    """Per-token logits (N, 2): is a token vector a corrected dominant feature or a complete-language one?"""

    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden), nn.LeakyReLU(LEAKY_SLOPE), nn.Linear(hidden, DISCRIMINATOR_CLASSES))


@register_model("lnln", trainer="dar_mmsa.training.lnln:LNLNTrainer", defaults=DEFAULTS, search_space=SEARCH_SPACE,
                description="LNLN (Zhang, Wang & Yu, NeurIPS 2024): language-dominated noise-resistant "
                            "learning, trained on its own random missing data", display="LNLN")
class LNLN(nn.Module):
    def __init__(self, args):
        super().__init__()
        check_config(args, REQUIRED_KEYS, "lnln")
        dim, mlp_dim, tokens = int(args["dim"]), int(args["mlp_dim"]), int(args["token_length"])
        self.dim = dim
        self.bert = BertEncoder(args["pretrained"], finetune=bool(args.get("use_finetune", True)))
        if int(args["feature_dims"][0]) != self.bert.hidden_size:
            raise ConfigError(f"lnln: feature_dims[0] = {args['feature_dims'][0]} but the BERT at "
                              f"{args['pretrained']} is {self.bert.hidden_size} wide: make them equal")
        self.extractors = nn.ModuleDict({
            name: TokenEmbedding(int(args["feature_dims"][i]), int(args["feature_length"][i]), tokens, dim,
                                 int(args["extractor_depth"]), int(args["extractor_heads"]), mlp_dim)
            for i, name in enumerate(MODALITIES)
        })
        self.dmc = DominantModalityCorrection(
            tokens, dim, mlp_dim, completeness_tokens=int(args["completeness_token_length"]),
            completeness_depth=int(args["completeness_depth"]), completeness_heads=int(args["completeness_heads"]),
            proxy_depth=int(args["proxy_depth"]), proxy_heads=int(args["proxy_heads"]))
        self.dmml = DominantModalityLearning(
            tokens, dim, mlp_dim, encoder_depth=int(args["language_encoder_depth"]),
            encoder_heads=int(args["language_encoder_heads"]), hyper_depth=int(args["hyper_depth"]),
            hyper_heads=int(args["hyper_heads"]), fusion_depth=int(args["fusion_depth"]),
            fusion_heads=int(args["fusion_heads"]))
        self.reconstructor = Reconstructor(tokens, dim, int(args["reconstructor_depth"]),
                                           int(args["reconstructor_heads"]), mlp_dim)
        self.effectiveness_discriminator = EffectivenessDiscriminator(dim, int(args["discriminator_hidden_dim"]))

    def extract(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor):
        """(h_1_l, h_1_a, h_1_v), each (B, tokens, dim)."""
        return (self.extractors["text"](self.bert(text)), self.extractors["audio"](audio),
                self.extractors["vision"](vision))

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor,
                text_full=None, audio_full=None, vision_full=None) -> dict:
        h_l, h_a, h_v = self.extract(text, audio, vision)
        h_d, w = self.dmc(h_l, h_a, h_v)
        preds = self.dmml(h_d, h_a, h_v)
        out = {"sentiment_preds": preds, "M": preds, "w": w,
               "effectiveness_discriminator_out": None, "rec_feats": None, "complete_feats": None}
        complete = (text_full, audio_full, vision_full)
        if all(x is None for x in complete):
            return out
        if any(x is None for x in complete):
            raise ValueError("lnln: give all of text_full, audio_full and vision_full (training) or none")
        # targets: the same extractors on the complete inputs, not detached (as in the reference)
        complete_l, complete_a, complete_v = self.extract(*complete)
        out["rec_feats"] = self.reconstructor(h_a, h_v, h_l)
        out["complete_feats"] = torch.cat([complete_a, complete_v, complete_l], dim=1)
        tokens = torch.cat([h_d, complete_l], dim=0).reshape(-1, self.dim)  # first half: h_1_d
        out["effectiveness_discriminator_out"] = self.effectiveness_discriminator(tokens)
        return out
