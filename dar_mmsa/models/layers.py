"""Shared Transformer blocks. Every model reuses these; no model keeps a private copy.

Two families, as in ``shared/specs/baselines.md``:

* block B (ALMT, LNLN, DAR, DERL): pre-norm token Transformer on (B, T, d) --
  :class:`Attention`, :class:`FeedForward`, :class:`Transformer`, :class:`TokenTransformer`,
  :class:`CrossTransformer`, :class:`HyperModalityLearning`;
* block A (TETFN, DAR's cross-modal attention): MulT-style cross-modal encoder on
  (T, B, d) -- :class:`MulTEncoder`.
"""
from __future__ import annotations

import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn


# ----------------------------------------------------------------------------- block B
def multihead_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """softmax(q k^T / sqrt(dh)) v per head on projected (B, T, h*dh) inputs; returns (B, Tq, h*dh).

    Through ``F.scaled_dot_product_attention``: fused kernels (flash / memory-efficient on a GPU,
    memory linear in T) instead of materialising the (B, h, Tq, Tk) weights.
    """
    b, tq, inner = q.shape
    dh = inner // heads

    def split(x):
        return x.view(b, x.shape[1], heads, dh).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return out.transpose(1, 2).reshape(b, tq, inner)


class Attention(nn.Module):
    """Multi-head attention with bias-free q/k/v projections and a biased output projection."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.to_out(multihead_attention(self.to_q(q), self.to_k(k), self.to_v(v), self.heads))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class PreNormLayer(nn.Module):
    """x <- x + Attn(LN_q(x), LN_k(s), LN_v(s)); x <- x + FF(LN(x)); s = x for self-attention."""

    def __init__(self, dim: int, heads: int, dim_head: int, mlp_dim: int):
        super().__init__()
        self.norm_q, self.norm_k, self.norm_v = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dim_head)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, mlp_dim)

    def forward(self, x: torch.Tensor, source: Optional[torch.Tensor] = None) -> torch.Tensor:
        source = x if source is None else source
        x = x + self.attn(self.norm_q(x), self.norm_k(source), self.norm_v(source))
        return x + self.ff(self.norm_ff(x))


class Transformer(nn.Module):
    """A stack of :class:`PreNormLayer` with no final LayerNorm."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_dim: int, dim_head: int = 64):
        super().__init__()
        self.layers = nn.ModuleList(PreNormLayer(dim, heads, dim_head, mlp_dim) for _ in range(depth))

    def forward(self, x: torch.Tensor, source: Optional[torch.Tensor] = None, save_hidden: bool = False):
        hidden = [x]
        for layer in self.layers:
            x = layer(x, source)
            hidden.append(x)
        return hidden if save_hidden else x


class TokenTransformer(nn.Module):
    """Optionally prepend ``token_len`` learnable tokens, add learnable positions, run a Transformer.

    With ``save_hidden`` the output is ``[input + positions, layer 1, ..., layer depth]``.
    """

    def __init__(self, num_frames: int, token_len: Optional[int], dim: int, depth: int, heads: int,
                 mlp_dim: int, dim_head: int = 64):
        super().__init__()
        self.token_len = token_len
        extra = token_len or 0
        self.extra_tokens = nn.Parameter(torch.zeros(1, extra, dim)) if token_len else None
        self.pos_embedding = nn.Parameter(torch.randn(1, num_frames + extra, dim))
        self.encoder = Transformer(dim, depth, heads, mlp_dim, dim_head)

    def forward(self, x: torch.Tensor, save_hidden: bool = False):
        if self.extra_tokens is not None:
            x = torch.cat([self.extra_tokens.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embedding[:, : x.shape[1]]
        return self.encoder(x, save_hidden=save_hidden)


class CrossTransformer(nn.Module):
    """Target attends to a fixed source; one shared learnable token is prepended to both.

    Returns the updated target, (B, T+1, dim).
    """

    def __init__(self, source_len: int, target_len: int, dim: int, depth: int, heads: int,
                 mlp_dim: int, dim_head: int = 64):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_source = nn.Parameter(torch.randn(1, source_len + 1, dim))
        self.pos_target = nn.Parameter(torch.randn(1, target_len + 1, dim))
        self.encoder = Transformer(dim, depth, heads, mlp_dim, dim_head)

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        token = self.cls_token.expand(source.shape[0], -1, -1)
        source = torch.cat([token, source], dim=1) + self.pos_source[:, : source.shape[1] + 1]
        target = torch.cat([token, target], dim=1) + self.pos_target[:, : target.shape[1] + 1]
        return self.encoder(target, source)


class HyperModalityLayer(nn.Module):
    """ALMT's AHL layer / LNLN's hyper-modality layer (spec §0.5).

    h_hyper <- LN(h_hyper) + W_out(Attn(guide -> audio) + Attn(guide -> vision)).
    """

    def __init__(self, dim: int = 128, heads: int = 8):
        super().__init__()
        self.heads = heads
        self.norm_guide, self.norm_audio = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.norm_vision, self.norm_hyper = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k_audio, self.to_v_audio = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim, bias=False)
        self.to_k_vision, self.to_v_vision = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, guide, audio, vision, hyper):
        q = self.to_q(self.norm_guide(guide))
        audio, vision = self.norm_audio(audio), self.norm_vision(vision)
        shift = multihead_attention(q, self.to_k_audio(audio), self.to_v_audio(audio), self.heads)
        shift = shift + multihead_attention(q, self.to_k_vision(vision), self.to_v_vision(vision), self.heads)
        return self.norm_hyper(hyper) + self.to_out(shift)


class HyperModalityLearning(nn.Module):
    """``depth`` hyper-modality layers; layer i is guided by ``guides[i]``."""

    def __init__(self, dim: int = 128, depth: int = 3, heads: int = 8):
        super().__init__()
        self.layers = nn.ModuleList(HyperModalityLayer(dim, heads) for _ in range(depth))

    def forward(self, guides: List[torch.Tensor], audio, vision, hyper):
        for guide, layer in zip(guides, self.layers):
            hyper = layer(guide, audio, vision, hyper)
        return hyper


# ----------------------------------------------------------------------------- block A
def sinusoidal_positions(x: torch.Tensor, dim: int) -> torch.Tensor:
    """fairseq-style sinusoidal positions for (T, B, *) input: step t gets index t+1 when
    channel 0 is non-zero, else index 0 (an all-zero vector)."""
    steps = x.shape[0]
    nonpad = (x[..., 0] != 0).to(x.dtype)
    positions = (torch.arange(1, steps + 1, device=x.device, dtype=x.dtype)[:, None] * nonpad)
    half = dim // 2
    freq = torch.exp(torch.arange(half, device=x.device, dtype=torch.float32) * -(math.log(10000.0) / max(half - 1, 1)))
    angles = positions.float()[..., None] * freq
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2:
        table = F.pad(table, (0, 1))
    return (table * nonpad[..., None].float()).to(x.dtype)


def future_mask(tq: int, tk: int, device) -> torch.Tensor:
    """-inf at (i, j) with j >= i + 1 + |tk - tq|, 0 elsewhere."""
    i = torch.arange(tq, device=device)[:, None]
    j = torch.arange(tk, device=device)[None, :]
    return torch.zeros(tq, tk, device=device).masked_fill(j >= i + 1 + abs(tk - tq), float("-inf"))


class MulTAttention(nn.Module):
    """Packed-projection multi-head attention (MulT / fairseq), xavier init, float32 softmax."""

    def __init__(self, dim: int, heads: int, attn_dropout: float = 0.0):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.scale = self.head_dim**-0.5
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        self.attn_dropout = attn_dropout
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, q, k, v, mask: Optional[torch.Tensor] = None):
        """(T, B, d) inputs; ``mask`` additive (Tq, Tk). softmax(q k^T * scale + mask) v with dropout on
        the weights in training, through ``F.scaled_dot_product_attention`` (fused kernels)."""
        tq, b, d = q.shape
        wq, wk, wv = self.in_proj_weight.chunk(3)
        bq, bk, bv = self.in_proj_bias.chunk(3)

        def heads(x, w, bias):  # (T, B, d) -> (B, heads, T, head_dim)
            return F.linear(x, w, bias).view(x.shape[0], b, self.heads, self.head_dim).permute(1, 2, 0, 3)

        q, k, v = heads(q, wq, bq), heads(k, wk, bk), heads(v, wv, bv)
        if mask is not None and torch.is_floating_point(mask):
            mask = mask.to(q.dtype)  # under autocast the projections are bf16/fp16
        dropout = self.attn_dropout if self.training else 0.0
        if dropout > 0 and q.device.type == "cpu":
            # torch's CPU SDPA with dropout falls back to a math path slower than F.dropout
            # (bench/attention.py); GPUs drop inside the fused kernels
            logits = (q @ k.transpose(-1, -2)) * self.scale
            if mask is not None:
                logits = logits + mask
            weights = torch.softmax(logits.float(), dim=-1).type_as(logits)
            out = F.dropout(weights, p=dropout, training=True) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=self.scale)
        return self.out_proj(out.permute(2, 0, 1, 3).reshape(tq, b, d))


class MulTLayer(nn.Module):
    def __init__(self, dim, heads, attn_dropout, relu_dropout, res_dropout, attn_mask):
        super().__init__()
        self.attn = MulTAttention(dim, heads, attn_dropout)
        self.norm_attn, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        for fc in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)
        self.relu_dropout, self.res_dropout, self.attn_mask = relu_dropout, res_dropout, attn_mask

    def forward(self, x, kv=None):
        y = self.norm_attn(x)
        kv = y if kv is None else self.norm_attn(kv)
        mask = future_mask(x.shape[0], kv.shape[0], x.device) if self.attn_mask else None
        x = x + F.dropout(self.attn(y, kv, kv, mask), self.res_dropout, self.training)
        h = F.dropout(F.relu(self.fc1(self.norm_ff(x))), self.relu_dropout, self.training)
        return x + F.dropout(self.fc2(h), self.res_dropout, self.training)


class MulTEncoder(nn.Module):
    """MulT cross-modal Transformer encoder on (T, B, d) (spec block A).

    ``forward(x_q)`` is self-attention; ``forward(x_q, x_kv)`` lets x_q attend to x_kv.
    """

    def __init__(self, embed_dim: int, num_heads: int, layers: int, attn_dropout: float = 0.0,
                 relu_dropout: float = 0.0, res_dropout: float = 0.0, embed_dropout: float = 0.0,
                 attn_mask: bool = False, position_embedding: bool = False):
        super().__init__()
        self.embed_dim, self.embed_dropout = embed_dim, embed_dropout
        self.embed_scale = math.sqrt(embed_dim)
        self.position_embedding = position_embedding
        self.layers = nn.ModuleList(
            MulTLayer(embed_dim, num_heads, attn_dropout, relu_dropout, res_dropout, attn_mask) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(embed_dim)

    def _embed(self, x):
        y = self.embed_scale * x
        if self.position_embedding:
            y = y + sinusoidal_positions(x, self.embed_dim)
        return F.dropout(y, self.embed_dropout, self.training)

    def forward(self, x_q: torch.Tensor, x_kv: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self._embed(x_q)
        kv = None if x_kv is None else self._embed(x_kv)
        for layer in self.layers:
            x = layer(x, kv)
        return self.norm(x)


# ----------------------------------------------------------------------------- block B, appended
class TokenEmbedding(nn.Module):
    """Linear(in_dim -> dim), then a :class:`TokenTransformer` with ``tokens`` learnable tokens;
    returns those tokens: (B, T, in_dim) -> (B, tokens, dim). ALMT's and LNLN's per-modality
    embedding (the reference slices the first ``tokens`` positions of the output)."""

    def __init__(self, in_dim: int, num_frames: int, tokens: int, dim: int, depth: int, heads: int,
                 mlp_dim: int, dim_head: int = 64):
        super().__init__()
        self.tokens = tokens
        self.projection = nn.Linear(in_dim, dim)
        self.encoder = TokenTransformer(num_frames, tokens, dim, depth, heads, mlp_dim, dim_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.projection(x))[:, : self.tokens]
