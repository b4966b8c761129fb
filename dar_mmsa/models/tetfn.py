"""TETFN (Text Enhanced Transformer Fusion Network, Wang et al., Pattern Recognition 2023), as
ported to MMSA master.

Text (fine-tuned BERT + Conv1d), audio and vision (LSTM + Conv1d) are projected to d = 50 on a
common length of 50 steps. Each modality's branch combines MulT cross-modal encoders (block A,
:class:`~dar_mmsa.models.layers.MulTEncoder`), where the audio and vision branches use
*text-enhanced* transformers: the other non-verbal stream is first conditioned on the text. The
three branch summaries feed the fusion head (M); three unimodal heads (T, A, V) are trained on
Self-MM-style self-generated labels (see ``dar_mmsa.training.tetfn``). ``forward`` returns
``{"M", "T", "A", "V", "Feature_f", "Feature_t", "Feature_a", "Feature_v"}``.

Choices (see ``docs/models.md``):

* Alignment happens inside the model, with MMSA master's ``AlignSubNet("avg_pool")`` semantics
  (:func:`pool_to_length`): identity on the default aligned features (T = 50); unaligned inputs are
  padded by repeating their last frame to the next multiple of 50 and averaged in windows.
* Reference behaviour by default: the vision Conv1d uses ``conv1d_kernel_size_a`` (a bug of the
  port; ``conv1d_kernel_size_v`` is never read). ``fix_vision_kernel: true`` uses
  ``conv1d_kernel_size_v`` instead (MOSI: 3, which shortens the vision sequence to 48 steps, as an
  unpadded Conv1d does in MulT).
* Reference behaviour by default in training too (``dar_mmsa.training.tetfn``): gradients of the
  last ``batches % update_epochs`` batches of an epoch are discarded; ``flush_trailing_gradients:
  true`` steps on them. A class centre with no member stays zero (the reference gives NaN).
* Audio/vision lengths are ignored (tuples ``(features, lengths)`` are accepted and unpacked); the
  LSTMs run over the padded sequences and the time max-pool includes padded steps, as in the reference.
"""
from __future__ import annotations

import math
from typing import Dict

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import register_model
from .layers import MulTEncoder
from .text import BertEncoder

_SHARED = {
    "batch_size": 64,
    "transformers": "bert",
    "pretrained": "bert-base-uncased",
    "a_lstm_layers": 1,
    "a_lstm_dropout": 0.0,
    "v_lstm_layers": 1,
    "v_lstm_dropout": 0.0,
    "conv1d_kernel_size_l": 1,
    "conv1d_kernel_size_a": 1,
    "dst_feature_dims": 50,
    "nheads": 5,
    "attn_dropout": 0.1,
    "attn_dropout_a": 0.0,
    "attn_dropout_v": 0.1,
    "post_fusion_dropout": 0.0,
    "post_fusion_dim": 64,
    "post_audio_dropout": 0.0,
    "post_audio_dim": 32,
    "post_video_dim": 16,
    "excludeZero": True,
    "update_epochs": 4,
    "H": 3,
    "decay": False,
    "weight_decay_bert": 0.001,
    "learning_rate_bert": 3e-05,
    "weight_decay_other": 0.01,
}

DEFAULTS = {
    "commonParams": {
        "need_data_aligned": True,
        "need_model_aligned": True,  # informative: the model pools to 50 steps itself (pool_to_length)
        "need_normalized": False,
        "use_bert": True,
        "use_finetune": True,
        "save_labels": False,
        "early_stop": 8,
        "update_epochs": 4,
        "max_epochs": 1000,  # the reference loops until early stopping; this only caps runaway runs
        "fix_vision_kernel": False,  # true: the vision Conv1d reads conv1d_kernel_size_v (reference: _a)
        "flush_trailing_gradients": False,  # true: step on the last <update_epochs batches of an epoch
    },
    "datasetParams": {
        "mosi": dict(
            _SHARED,
            a_lstm_hidden_size=16,
            v_lstm_hidden_size=64,
            conv1d_kernel_size_v=3,
            relu_dropout=0.0,
            embed_dropout=0.0,
            res_dropout=0.1,
            post_text_dropout=0.0,
            post_text_dim=32,
            post_video_dropout=0.0,
            train_samples=1284,
            weight_decay_audio=0.01,
            weight_decay_video=0.0,
            learning_rate_audio=0.0005,
            learning_rate_video=0.0003,
            learning_rate_other=0.0003,
        ),
        "mosei": dict(
            _SHARED,
            batch_size=32,
            a_lstm_hidden_size=32,
            v_lstm_hidden_size=32,
            conv1d_kernel_size_v=1,
            relu_dropout=0.1,
            embed_dropout=0.1,
            res_dropout=0.0,
            post_text_dropout=0.1,
            post_text_dim=64,
            post_video_dropout=0.1,
            train_samples=16326,
            weight_decay_audio=0.0,
            weight_decay_video=0.001,
            learning_rate_audio=0.001,
            learning_rate_video=0.005,
            learning_rate_other=0.0001,
        ),
    },
}
# Not CH-SIMS: the port reads aligned features (need_data_aligned) and MMSA ships no aligned SIMS file.
UNSUPPORTED = {"sims": "it reads aligned features, and MMSA ships no aligned CH-SIMS file"}

# What a tuning search may try (run_benchmark.py --experiment tune), in the style of MMSA's Self-MM lists.
SEARCH_SPACE = {
    "batch_size": [16, 32, 64],
    "learning_rate_bert": [1e-5, 3e-5, 5e-5],
    "learning_rate_audio": [1e-4, 5e-4, 1e-3, 5e-3],
    "learning_rate_video": [1e-4, 3e-4, 1e-3, 5e-3],
    "learning_rate_other": [1e-4, 3e-4, 1e-3],
    "weight_decay_bert": [0.001, 0.01],
    "weight_decay_other": [0.001, 0.01],
    "attn_dropout": [0.0, 0.1, 0.2],
    "post_fusion_dim": [32, 64, 128],
    "post_fusion_dropout": [0.0, 0.1],
}

ALIGNED_LENGTH = 50


def pool_to_length(x: torch.Tensor, length: int = ALIGNED_LENGTH) -> torch.Tensor:
    """(B, T, D) -> (B, length, D): repeat the last frame up to the next multiple of ``length``,
    then average non-overlapping windows (MMSA master's AlignSubNet "avg_pool"). Identity at T = length."""
    steps = x.shape[1]
    window = math.ceil(steps / length)
    padded = window * length
    if padded > steps:
        x = torch.cat([x, x[:, -1:].expand(-1, padded - steps, -1)], dim=1)
    return x.reshape(x.shape[0], length, window, x.shape[2]).mean(dim=2)


class RecurrentProjection(nn.Module):
    """LSTM over time, then an unpadded, bias-free Conv1d to ``out_dim``; returns (T', B, out_dim)."""

    def __init__(self, in_dim: int, hidden: int, layers: int, dropout: float, out_dim: int, kernel: int):
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0,
                            batch_first=True)
        self.conv = nn.Conv1d(hidden, out_dim, kernel_size=kernel, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(x)
        return self.conv(hidden.transpose(1, 2)).permute(2, 0, 1)


class TextEnhancedTransformer(nn.Module):
    """TE(query_m, key_m, text): c = Enc_lower(query_m -> text) (1 layer), out = Enc_upper(key_m -> c)
    (2 layers); both causal, with sinusoidal positions."""

    def __init__(self, dim: int, heads: int, attn_dropout: float, relu_dropout: float, res_dropout: float,
                 embed_dropout: float):
        super().__init__()
        common = dict(attn_dropout=attn_dropout, relu_dropout=relu_dropout, res_dropout=res_dropout,
                      embed_dropout=embed_dropout, attn_mask=True, position_embedding=True)
        self.lower = MulTEncoder(dim, heads, layers=1, **common)
        self.upper = MulTEncoder(dim, heads, layers=2, **common)

    def forward(self, query_m: torch.Tensor, key_m: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.upper(key_m, self.lower(query_m, text))


class PredictionHead(nn.Module):
    """dropout -> Linear -> ReLU (the feature) -> Linear -> ReLU -> Linear(1); returns (feature, score)."""

    def __init__(self, in_dim: int, hidden: int, dropout: float):
        super().__init__()
        self.feature = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.ReLU())
        self.score = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor):
        feature = self.feature(x)
        return feature, self.score(feature)


def _features(x):
    """Accept MMSA's ``(features, lengths)`` tuples as well as plain tensors; lengths are unused."""
    return x[0] if isinstance(x, (tuple, list)) else x


@register_model("tetfn", trainer="dar_mmsa.training.tetfn:TETFNTrainer", defaults=DEFAULTS, search_space=SEARCH_SPACE,
                description="TETFN (Wang et al., Pattern Recognition 2023), MMSA master port: text-enhanced "
                            "cross-modal transformers with self-supervised unimodal labels", display="TETFN",
                unsupported=UNSUPPORTED)
class TETFN(nn.Module):
    def __init__(self, args):
        super().__init__()
        feature_dims = args.get("feature_dims")
        if not feature_dims or len(feature_dims) != 3:
            raise ConfigError(f"tetfn needs feature_dims [text, audio, vision], got {feature_dims}: "
                              f"use MMSA's datasetCommonParams for mosi/mosei")
        text_dim, audio_dim, vision_dim = (int(d) for d in feature_dims)
        d, heads = int(args["dst_feature_dims"]), int(args["nheads"])
        if d % heads:
            raise ConfigError(f"tetfn: dst_feature_dims ({d}) must be divisible by nheads ({heads})")
        vision_kernel = args["conv1d_kernel_size_v"] if args.get("fix_vision_kernel") else args["conv1d_kernel_size_a"]

        self.text_model = BertEncoder(args["pretrained"], finetune=bool(args.get("use_finetune", True)))
        self.audio_model = RecurrentProjection(audio_dim, args["a_lstm_hidden_size"], args["a_lstm_layers"],
                                               args["a_lstm_dropout"], d, args["conv1d_kernel_size_a"])
        self.video_model = RecurrentProjection(vision_dim, args["v_lstm_hidden_size"], args["v_lstm_layers"],
                                               args["v_lstm_dropout"], d, vision_kernel)
        self.proj_l = nn.Conv1d(self.text_model.hidden_size, d, kernel_size=args["conv1d_kernel_size_l"], bias=False)

        dropouts = dict(relu_dropout=args["relu_dropout"], res_dropout=args["res_dropout"],
                        embed_dropout=args["embed_dropout"])

        def cross(attn_dropout, dim=d, layers=2):
            return MulTEncoder(dim, heads, layers, attn_dropout=attn_dropout, attn_mask=True, **dropouts)

        self.trans_l_with_a = cross(args["attn_dropout_a"])
        self.trans_l_with_v = cross(args["attn_dropout_v"])
        self.trans_a_with_l = cross(args["attn_dropout"])
        self.trans_v_with_l = cross(args["attn_dropout"])
        self.trans_a_with_v = TextEnhancedTransformer(d, heads, args["attn_dropout"], **dropouts)
        self.trans_v_with_a = TextEnhancedTransformer(d, heads, args["attn_dropout"], **dropouts)
        self.trans_l_mem = cross(args["attn_dropout"], dim=2 * d)
        self.trans_a_mem = cross(args["attn_dropout"], dim=2 * d)
        self.trans_v_mem = cross(args["attn_dropout"], dim=2 * d)

        self.fusion_head = PredictionHead(6 * d, args["post_fusion_dim"], args["post_fusion_dropout"])
        self.text_head = PredictionHead(d, args["post_text_dim"], args["post_text_dropout"])
        self.audio_head = PredictionHead(d, args["post_audio_dim"], args["post_audio_dropout"])
        self.video_head = PredictionHead(d, args["post_video_dim"], args["post_video_dropout"])

    def forward(self, text: torch.Tensor, audio, vision) -> Dict[str, torch.Tensor]:
        audio, vision = pool_to_length(_features(audio)), pool_to_length(_features(vision))
        text_hidden = self.text_model(text)  # (B, L, 768)
        x_l = self.proj_l(text_hidden.transpose(1, 2)).permute(2, 0, 1)  # (T, B, d)
        x_a, x_v = self.audio_model(audio), self.video_model(vision)

        h_l = self.trans_l_mem(torch.cat([self.trans_l_with_a(x_l, x_a), self.trans_l_with_v(x_l, x_v)], dim=-1))[-1]
        h_a = self.trans_a_mem(torch.cat([self.trans_a_with_l(x_a, x_l),
                                          self.trans_a_with_v(x_v, x_a, x_l)], dim=-1))[-1]
        h_v = self.trans_v_mem(torch.cat([self.trans_v_with_l(x_v, x_l),
                                          self.trans_v_with_a(x_a, x_v, x_l)], dim=-1))[-1]

        feature_f, fusion = self.fusion_head(torch.cat([h_l, h_a, h_v], dim=-1))
        feature_t, text_score = self.text_head(x_l.max(dim=0).values)
        feature_a, audio_score = self.audio_head(x_a.max(dim=0).values)
        feature_v, video_score = self.video_head(x_v.max(dim=0).values)
        return {"M": fusion, "T": text_score, "A": audio_score, "V": video_score,
                "Feature_f": feature_f, "Feature_t": feature_t, "Feature_a": feature_a, "Feature_v": feature_v}
