import torch

from mmvit_backbones.models.layers import (
    attention,
    attention_with_probs,
    drop_path_rates,
    fused_attention,
    fused_attention_enabled,
)


def test_fused_and_plain_paths_agree_with_bias_and_mask():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 2, 5, 8).unbind(0)
    bias = torch.randn(2, 5, 5)
    bias[:, :, -1] = -1e6  # a masked key
    fast = attention(q, k, v, bias, scale=0.3)
    with fused_attention(False):
        assert not fused_attention_enabled()
        plain = attention(q, k, v, bias, scale=0.3)
    assert fused_attention_enabled()
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)


def test_attention_with_probs_is_the_softmax_written_out():
    q, k, v = torch.randn(3, 1, 4, 3).unbind(0)
    out, probs = attention_with_probs(q, k, v)
    expected = torch.softmax(q @ k.transpose(-2, -1) / 3 ** 0.5, dim=-1)
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(out, expected @ v)
    assert torch.allclose(probs.sum(-1), torch.ones(1, 4))


def test_attention_runs_under_bf16_autocast():
    q, k, v = torch.randn(3, 1, 2, 6, 4).unbind(0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), torch.zeros(6, 6))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_drop_path_rates_split_linspace_by_stage():
    rates = drop_path_rates(0.3, [1, 2, 1])
    assert [len(r) for r in rates] == [1, 2, 1]
    torch.testing.assert_close(torch.tensor(sum(rates, [])), torch.linspace(0, 0.3, 4))
