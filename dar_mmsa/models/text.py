"""The text encoder every BERT-based model of ours shares: a local BERT, fine-tuned or frozen."""
from __future__ import annotations

import torch
from torch import nn


class BertEncoder(nn.Module):
    """``transformers.BertModel`` from a local ``pretrained`` directory; ``forward`` takes MMSA's
    (B, 3, L) ``text_bert`` tensor and returns ``last_hidden_state`` (B, L, hidden)."""

    def __init__(self, pretrained: str, finetune: bool = True):
        super().__init__()
        from transformers import BertModel

        from ..text_encoder import resolve_pretrained

        self.model = BertModel.from_pretrained(resolve_pretrained(pretrained))
        self.finetune = finetune
        self.hidden_size = self.model.config.hidden_size

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        ids, mask, segments = text[:, 0].long(), text[:, 1].float(), text[:, 2].long()
        with torch.set_grad_enabled(self.finetune and torch.is_grad_enabled()):
            return self.model(input_ids=ids, attention_mask=mask, token_type_ids=segments).last_hidden_state
