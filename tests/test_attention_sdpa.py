"""Every attention block of ours through F.scaled_dot_product_attention equals the hand-written
attention it replaced (restated in ``attention_reference.py``) within float tolerance: outputs in eval mode, gradients
without dropout; attention dropout acts in training only."""
import pytest
import torch
from attention_reference import reference_mult_forward, reference_multihead_attention

from dar_mmsa.models import layers


@pytest.fixture
def reference(monkeypatch):
    """A context switching the blocks back to the previous attention."""
    def use():
        monkeypatch.setattr(layers, "multihead_attention", reference_multihead_attention)
        monkeypatch.setattr(layers.MulTAttention, "forward", reference_mult_forward)
    return use


def _blocks():
    torch.manual_seed(0)
    b, dim = 3, 16
    x, s = torch.randn(b, 7, dim), torch.randn(b, 5, dim)
    guide, audio, vision, hyper = (torch.randn(b, n, dim) for n in (4, 6, 5, 4))
    t_first = torch.randn(7, b, dim)
    t_first[5:, 0] = 0.0  # padding rows: position embedding index 0
    t_kv = torch.randn(9, b, dim)
    return [
        ("Attention", layers.Attention(dim, heads=4, dim_head=8), (x, s, s)),
        ("Transformer self", layers.Transformer(dim, 2, 4, 32, dim_head=8), (x,)),
        ("Transformer cross", layers.Transformer(dim, 2, 4, 32, dim_head=8), (x, s)),
        ("TokenTransformer", layers.TokenTransformer(7, 2, dim, 2, 4, 32, dim_head=8), (x,)),
        ("CrossTransformer", layers.CrossTransformer(5, 7, dim, 2, 4, 32, dim_head=8), (s, x)),
        ("TokenEmbedding", layers.TokenEmbedding(16, 7, 2, 8, 1, 2, 16, dim_head=4), (x,)),
        ("HyperModalityLearning", layers.HyperModalityLearning(dim, depth=2, heads=4),
         ([guide, guide * 2], audio, vision, hyper)),
        ("MulTAttention", layers.MulTAttention(dim, 4, attn_dropout=0.3), (t_first, t_kv, t_kv)),
        ("MulTAttention mask", layers.MulTAttention(dim, 4, attn_dropout=0.3),
         (t_first, t_kv, t_kv, layers.future_mask(7, 9, "cpu"))),
        ("MulTEncoder self", layers.MulTEncoder(dim, 4, 2, attn_dropout=0.2, attn_mask=True,
                                                position_embedding=True), (t_first,)),
        ("MulTEncoder cross", layers.MulTEncoder(dim, 4, 2, attn_dropout=0.2, position_embedding=True),
         (t_first, t_kv)),
    ]


def _output(module, inputs):
    out = module(*inputs)
    return out[-1] if isinstance(out, list) else out


@pytest.mark.parametrize("index", range(11))
def test_eval_outputs_equal_previous_attention(index, reference):
    name, module, inputs = _blocks()[index]
    module.eval()
    with torch.no_grad():
        new = _output(module, inputs)
        reference()
        old = _output(module, inputs)
    assert new.shape == old.shape
    torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("index", [1, 4, 6, 9])
def test_gradients_equal_previous_attention(index, reference):
    """Training mode with attention dropout off: same gradients."""
    name, module, inputs = _blocks()[index]
    for m in module.modules():
        if isinstance(m, layers.MulTAttention):
            m.attn_dropout = 0.0
    module.train()

    def grads():
        module.zero_grad()
        _output(module, inputs).square().sum().backward()
        return [p.grad.clone() for p in module.parameters() if p.grad is not None]

    new = grads()
    reference()
    old = grads()
    assert len(new) == len(old) > 0
    for a, b in zip(new, old):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_attention_dropout_acts_in_training_only():
    torch.manual_seed(0)
    attn = layers.MulTAttention(16, 4, attn_dropout=0.5)
    x = torch.randn(6, 2, 16)
    attn.eval()
    plain = attn(x, x, x)
    torch.testing.assert_close(attn(x, x, x), plain)
    attn.train()
    dropped = attn(x, x, x)
    assert not torch.allclose(dropped, plain, atol=1e-3)
    attn.attn_dropout = 0.0
    torch.testing.assert_close(attn(x, x, x), plain, rtol=1e-5, atol=1e-6)


def test_future_mask_blocks_the_future():
    """Row 0 of a masked self-attention sees only step 0: changing later steps does not move it."""
    torch.manual_seed(0)
    attn = layers.MulTAttention(8, 2).eval()
    x = torch.randn(5, 1, 8)
    y = x.clone()
    y[1:] = torch.randn(4, 1, 8)
    mask = layers.future_mask(5, 5, "cpu")
    with torch.no_grad():
        a, b = attn(x, x, x, mask), attn(y, y, y, mask)
    torch.testing.assert_close(a[0], b[0])
    assert not torch.allclose(a[1], b[1])
