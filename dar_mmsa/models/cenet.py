"""CENET (Cross-modal Enhancement Network, Wang et al., IEEE TMM 2022), as ported to MMSA master.

BERT reads the text; after BERT layer 0 a Cross-modal Enhancement (CE) module lets every token
attend (one head, logits x 8) to the projected audio and vision frames, and adds the result to the
hidden states before BERT layers 1..11. A small head on the [CLS] state gives the score.
``forward`` returns a 1-tuple ``(logits (B, 1),)`` as the reference does.

Choices (see ``docs/models.md``):

* The CE module is injected by running BERT's layers ourselves (embeddings, layer 0, CE, layers
  1..) with eager attention and an additive (B, 1, 1, L) mask of -10000 on padding, as the
  reference does. With a 1-layer BERT (the tests' tiny BERT) CE follows the only layer.
* BERT embeddings are frozen (``requires_grad=False``) and run under no-grad; their dropout stays
  active in training. The pooler is kept (so any BERT checkpoint loads) but not computed.
* The reference also creates three never-used embedding tables (POS tag 5, word sentiment 3,
  polarity 6; 10,752 parameters). They are dropped unless ``unused_tag_embeddings`` is true, which
  only matters for the parameter count or for loading an MMSA checkpoint's shapes.
* Audio/vision lengths are ignored and padded frames are attended to, as in the reference.
* Trainer (``dar_mmsa.training.cenet``): ``max_grad_norm`` is read from the config (2, the value the
  reference hard-codes); ``max_epochs`` (1000) only caps runs the reference would leave to early stopping.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import register_model

DEFAULTS = {
    "commonParams": {
        "need_data_aligned": False,
        "need_model_aligned": False,
        "need_normalized": False,
        "use_bert": True,
        "use_finetune": True,
        "early_stop": 8,
        "max_epochs": 1000,  # the reference loops until early stopping; this only caps runaway runs
    },
    "datasetParams": {
        "mosi": {
            "pretrained": "bert-base-uncased",
            "learning_rate": 1e-05,
            "weight_decay": 0.0001,
            "max_grad_norm": 2,
            "adam_epsilon": 3e-08,
            "batch_size": 64,
            "unused_tag_embeddings": False,
        },
        "mosei": {
            "pretrained": "bert-base-uncased",
            "learning_rate": 1e-05,
            "weight_decay": 0.0001,
            "max_grad_norm": 2,
            "adam_epsilon": 1e-08,
            "batch_size": 64,
            "unused_tag_embeddings": False,
        },
    },
}
# no SIMS setting in the port: MOSI's, with bert-base-chinese (docs/models.md)
DEFAULTS["datasetParams"]["sims"] = dict(DEFAULTS["datasetParams"]["mosi"], pretrained="bert-base-chinese")

# What a tuning search may try (run_benchmark.py --experiment tune): the reference's optimiser settings.
SEARCH_SPACE = {
    "learning_rate": [5e-6, 1e-5, 3e-5, 5e-5],
    "weight_decay": [0.0, 1e-4, 1e-3],
    "max_grad_norm": [1, 2, 5],
    "batch_size": [16, 32, 64],
}

INJECTION_INDEX = 1  # CE runs on the output of BERT layer 0, before layer 1
ATTENTION_TEMPERATURE = 8.0  # the reference multiplies the CE attention logits by 8 (no 1/sqrt(d))
PADDING_LOGIT = -10000.0
# (vocabulary size, padding index) of the reference's unused SentiLARE tables
TAG_TABLES = {"pos_tag": (5, 4), "word_sentiment": (3, 2), "polarity": (6, 5)}


def enhancement_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          temperature: float = ATTENTION_TEMPERATURE) -> torch.Tensor:
    """Single-head attention softmax(temperature * q k^T) v over all frames (no mask, no dropout)."""
    weights = torch.softmax(temperature * query @ key.transpose(-1, -2), dim=-1)
    return weights @ value


class ModalityAttention(nn.Module):
    """Text tokens (queries) attend to one non-verbal sequence projected to the text width."""

    def __init__(self, hidden: int):
        super().__init__()
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def forward(self, text_hidden: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        return enhancement_attention(self.query(text_hidden), self.key(frames), self.value(frames))


def frame_projection(in_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden))


class CrossModalEnhancement(nn.Module):
    """H <- H + W [Attn(H, V'); Attn(H, A')] with V', A' the MLP-projected vision/audio frames."""

    def __init__(self, audio_dim: int, vision_dim: int, hidden: int = 768):
        super().__init__()
        self.audio_projection = frame_projection(audio_dim, hidden)
        self.vision_projection = frame_projection(vision_dim, hidden)
        self.audio_attention = ModalityAttention(hidden)
        self.vision_attention = ModalityAttention(hidden)
        self.shift = nn.Linear(2 * hidden, hidden)

    def forward(self, text_hidden: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor) -> torch.Tensor:
        from_vision = self.vision_attention(text_hidden, self.vision_projection(vision))
        from_audio = self.audio_attention(text_hidden, self.audio_projection(audio))
        return text_hidden + self.shift(torch.cat([from_vision, from_audio], dim=-1))


class SentimentHead(nn.Sequential):
    """dropout -> Linear(h, h) -> tanh -> dropout -> Linear(h, 1), on the [CLS] state."""

    def __init__(self, hidden: int, dropout: float):
        super().__init__(nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.Tanh(), nn.Dropout(dropout),
                         nn.Linear(hidden, 1))


def init_bert_style(module: nn.Module, std: float) -> None:
    """BERT's init for new modules: Linear/Embedding weights N(0, std), biases and padding rows 0."""
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Embedding)):
            nn.init.normal_(sub.weight, std=std)
        if isinstance(sub, nn.Linear) and sub.bias is not None:
            nn.init.zeros_(sub.bias)
        if isinstance(sub, nn.Embedding) and sub.padding_idx is not None:
            with torch.no_grad():
                sub.weight[sub.padding_idx].zero_()


def load_bert(pretrained: str):
    """A local BERT with eager attention, so its layers take our additive (B, 1, 1, L) mask."""
    from transformers import BertModel

    from ..text_encoder import resolve_pretrained

    return BertModel.from_pretrained(resolve_pretrained(pretrained), attn_implementation="eager")


def run_layer(layer: nn.Module, hidden: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
    out = layer(hidden, additive_mask)
    return out[0] if isinstance(out, tuple) else out  # transformers 4.x returns a tuple, 5.x a tensor


@register_model("cenet", trainer="dar_mmsa.training.cenet:CENETTrainer", defaults=DEFAULTS, search_space=SEARCH_SPACE,
                description="CENET (Wang et al., TMM 2022), MMSA master port: BERT with a cross-modal "
                            "enhancement module before layer 1", display="CENET")
class CENET(nn.Module):
    def __init__(self, args):
        super().__init__()
        feature_dims = args.get("feature_dims")
        if not feature_dims or len(feature_dims) != 3:
            raise ConfigError(f"cenet needs feature_dims [text, audio, vision], got {feature_dims}: "
                              f"use MMSA's datasetCommonParams for mosi/mosei")
        self.bert = load_bert(args["pretrained"])
        self.bert.embeddings.requires_grad_(False)
        config = self.bert.config
        hidden = config.hidden_size
        self.cross_modal_enhancement = CrossModalEnhancement(int(feature_dims[1]), int(feature_dims[2]), hidden)
        self.head = SentimentHead(hidden, config.hidden_dropout_prob)
        new_modules = [self.cross_modal_enhancement, self.head]
        self.tag_embeddings = None
        if args.get("unused_tag_embeddings"):
            self.tag_embeddings = nn.ModuleDict(
                {name: nn.Embedding(size, hidden, padding_idx=pad) for name, (size, pad) in TAG_TABLES.items()})
            self.tag_embeddings.requires_grad_(False)
            new_modules.append(self.tag_embeddings)
        for module in new_modules:
            init_bert_style(module, config.initializer_range)

    def encode(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor) -> torch.Tensor:
        """BERT hidden states (B, L, hidden) with CE applied before layer ``INJECTION_INDEX``."""
        ids, mask, segments = text[:, 0].long(), text[:, 1], text[:, 2].long()
        with torch.no_grad():
            hidden = self.bert.embeddings(input_ids=ids, token_type_ids=segments)
        additive_mask = (1.0 - mask.to(hidden.dtype))[:, None, None, :] * PADDING_LOGIT
        layers = self.bert.encoder.layer
        for layer in layers[:INJECTION_INDEX]:
            hidden = run_layer(layer, hidden, additive_mask)
        hidden = self.cross_modal_enhancement(hidden, audio, vision)
        for layer in layers[INJECTION_INDEX:]:
            hidden = run_layer(layer, hidden, additive_mask)
        return hidden

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor):
        return (self.head(self.encode(text, audio, vision)[:, 0]),)
