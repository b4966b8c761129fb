"""The hand-written attention our blocks used before ``F.scaled_dot_product_attention``, restated:
the reference of ``tests/test_attention_sdpa.py`` and the "before" of ``bench/attention.py``."""
import torch
import torch.nn.functional as F


def reference_multihead_attention(q, k, v, heads):
    b, tq, inner = q.shape
    dh = inner // heads

    def split(x):
        return x.view(b, x.shape[1], heads, dh).transpose(1, 2)

    weights = torch.softmax(split(q) @ split(k).transpose(-1, -2) * dh**-0.5, dim=-1)
    return (weights @ split(v)).transpose(1, 2).reshape(b, tq, inner)


def reference_mult_forward(self, q, k, v, mask=None):
    tq, b, d = q.shape
    wq, wk, wv = self.in_proj_weight.chunk(3)
    bq, bk, bv = self.in_proj_bias.chunk(3)

    def heads(x, w, bias):
        return F.linear(x, w, bias).reshape(x.shape[0], b * self.heads, self.head_dim).transpose(0, 1)

    q, k, v = heads(q, wq, bq) * self.scale, heads(k, wk, bk), heads(v, wv, bv)
    logits = q @ k.transpose(1, 2)
    if mask is not None:
        logits = logits + mask
    weights = torch.softmax(logits.float(), dim=-1).type_as(logits)
    weights = F.dropout(weights, p=self.attn_dropout, training=self.training)
    return self.out_proj((weights @ v).transpose(0, 1).reshape(tq, b, d))
