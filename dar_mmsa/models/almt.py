"""ALMT (Adaptive Language-guided Multimodal Transformer, Zhang et al., EMNLP 2023), MMSA master port.

Spec: ``shared/specs/baselines.md`` §3. Each modality is projected to 128 dims and summarised into
8 learnable tokens by a one-layer token Transformer; a language encoder keeps its hidden states;
three Adaptive Hyper-modality Learning (AHL) layers, each guided by one language state, build a
hyper-modality stream from audio and vision; a cross Transformer lets the last language state attend
to it, and a linear head on its prepended token gives the score. ``forward`` returns the raw (B, 1)
tensor, as the reference does. Parameters excluding BERT: MOSI 2,603,649; MOSEI 3,223,041.

Choices (also in ``docs/models.md``):

* BERT comes from ``pretrained`` (a local directory) and is fine-tuned when ``use_finetune``.
* Positional-embedding lengths come from ``feature_length`` ([text, audio, vision]), as in the
  reference, not from the data's ``seq_lens``; a longer input cannot be embedded, so a config whose
  ``seq_lens`` exceed ``feature_length`` fails at construction with a ConfigError (shorter inputs,
  e.g. aligned_50 data, work: the positions are sliced).
* Lengths and padding are ignored beyond BERT's attention mask, as in the reference.
* Trainer switches (commonParams): ``skip_zero_lr_epoch`` (default false = the reference, whose
  first epoch runs at lr 0) and ``epoch_cap`` (default null = no cap, the reference: training stops
  only by early stopping after ``early_stop`` = 32 epochs; ``max_epochs`` only shapes the schedule).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import register_model
from .layers import CrossTransformer, HyperModalityLearning, TokenEmbedding, TokenTransformer
from .text import BertEncoder

_SHARED = {
    "transformers": "bert",
    "pretrained": "bert-base-uncased",
    "learning_rate": 0.0001,
    "weight_decay": 0.0001,
    "max_grad_norm": 2,  # in the reference config but unused: ALMT does not clip gradients
    "batch_size": 64,
    "dst_feature_dims": 128,
    "dst_feature_hidden_dims": 128,
    "dst_embedding_length": 8,
    "embedding_depth": [1, 1, 1],
    "embedding_heads": [8, 8, 8],
    "l_encoder_heads": 8,
    "AHL_depth": 3,
    "h_hyper_layer_heads": 8,
    "fusion_hidden_d": 128,
    "fusion_heads": 8,
}

DEFAULTS = {
    "commonParams": {
        "need_data_aligned": False,
        "need_model_aligned": False,
        "need_normalized": False,
        "use_bert": True,
        "use_finetune": True,
        "max_epochs": 200,  # shapes the warm-up + cosine schedule; not a cap (see epoch_cap)
        "early_stop": 32,
        "epoch_cap": None,  # null: no cap, as the reference; an integer stops training there
        "skip_zero_lr_epoch": False,  # true: start the warm-up one epoch later (no lr-0 epoch)
    },
    "datasetParams": {
        "mosi": dict(_SHARED, feature_dims=[768, 5, 20], feature_length=[50, 375, 500], fusion_layer_depth=2),
        "mosei": dict(_SHARED, feature_dims=[768, 74, 35], feature_length=[50, 500, 500], fusion_layer_depth=4),
        # no SIMS setting in the port: MOSI's, with SIMS's sizes and BERT (docs/models.md)
        "sims": dict(_SHARED, pretrained="bert-base-chinese", feature_dims=[768, 33, 709],
                     feature_length=[39, 400, 55], fusion_layer_depth=2),
    },
}

# What a tuning search may try (run_benchmark.py --experiment tune).
SEARCH_SPACE = {
    "learning_rate": [3e-5, 1e-4, 3e-4, 1e-3],
    "weight_decay": [0.0, 1e-4, 1e-3],
    "batch_size": [16, 32, 64],
    "AHL_depth": [2, 3, 4],
}

REQUIRED_KEYS = ("pretrained", "feature_dims", "feature_length", "dst_feature_dims", "dst_feature_hidden_dims",
                 "dst_embedding_length", "embedding_depth", "embedding_heads", "l_encoder_heads", "AHL_depth",
                 "h_hyper_layer_heads", "fusion_hidden_d", "fusion_heads", "fusion_layer_depth")
MODALITIES = ("text", "audio", "vision")


def check_config(args, required, model: str) -> None:
    """One ConfigError naming every missing key, and positional lengths that fit the data."""
    missing = [key for key in required if args.get(key) is None]
    if missing:
        raise ConfigError(f"{model} config lacks {', '.join(missing)}: regenerate the config with "
                          f"python -m dar_mmsa.config --write or add the keys")
    for key in ("feature_dims", "feature_length"):
        if len(args[key]) != 3:
            raise ConfigError(f"{model} needs {key} as [text, audio, vision], got {args[key]}")
    seq_lens = args.get("seq_lens")
    if seq_lens and any(int(s) > int(f) for s, f in zip(seq_lens, args["feature_length"])):
        raise ConfigError(f"{model}: the data's sequence lengths {list(seq_lens)} exceed feature_length "
                          f"{list(args['feature_length'])}: set feature_length to at least the data's lengths")


@register_model("almt", trainer="dar_mmsa.training.almt:ALMTTrainer", defaults=DEFAULTS, search_space=SEARCH_SPACE,
                description="ALMT (Zhang et al., EMNLP 2023), MMSA master port: language-guided "
                            "hyper-modality learning over 8-token summaries", display="ALMT")
class ALMT(nn.Module):
    def __init__(self, args):
        super().__init__()
        check_config(args, REQUIRED_KEYS, "almt")
        dim, mlp_dim = int(args["dst_feature_dims"]), int(args["dst_feature_hidden_dims"])
        tokens = int(args["dst_embedding_length"])
        self.bert = BertEncoder(args["pretrained"], finetune=bool(args.get("use_finetune", True)))
        if int(args["feature_dims"][0]) != self.bert.hidden_size:
            raise ConfigError(f"almt: feature_dims[0] = {args['feature_dims'][0]} but the BERT at "
                              f"{args['pretrained']} is {self.bert.hidden_size} wide: make them equal")
        self.embeddings = nn.ModuleDict({
            name: TokenEmbedding(int(args["feature_dims"][i]), int(args["feature_length"][i]), tokens, dim,
                                 int(args["embedding_depth"][i]), int(args["embedding_heads"][i]), mlp_dim)
            for i, name in enumerate(MODALITIES)
        })
        hyper_depth = int(args["AHL_depth"])
        self.language_encoder = TokenTransformer(tokens, None, dim, hyper_depth - 1, int(args["l_encoder_heads"]),
                                                 mlp_dim)
        self.h_hyper = nn.Parameter(torch.ones(1, tokens, dim))
        self.hyper_modality = HyperModalityLearning(dim, hyper_depth, int(args["h_hyper_layer_heads"]))
        self.fusion = CrossTransformer(tokens, tokens, dim, int(args["fusion_layer_depth"]), int(args["fusion_heads"]),
                                       int(args["fusion_hidden_d"]))
        self.regression = nn.Linear(dim, 1)

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor) -> torch.Tensor:
        h_l = self.embeddings["text"](self.bert(text))
        h_a = self.embeddings["audio"](audio)
        h_v = self.embeddings["vision"](vision)
        language_states = self.language_encoder(h_l, save_hidden=True)  # [h_l^0, ..., h_l^(depth-1)]
        h_hyper = self.hyper_modality(language_states, h_a, h_v, self.h_hyper.expand(h_l.shape[0], -1, -1))
        fused = self.fusion(h_hyper, language_states[-1])
        return self.regression(fused[:, 0])
