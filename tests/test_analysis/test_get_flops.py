"""get_flops: mmengine's counter plus scaled_dot_product_attention, checked by hand."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmvit_backbones.analysis import get_flops
from mmvit_backbones.models.backbones import PaleTransformer
from mmvit_backbones.models.backbones.pale_transformer import PaleAttention, PaleLayouts
from mmvit_backbones.models.layers import fused_attention


class OneAttention(nn.Module):
    """A linear layer, then one SDPA call with differently shaped q, k and v."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 12)

    def forward(self, x):  # x: (N, 1, 5, 4)
        q = self.fc(x)[..., :4].expand(-1, 3, 5, 4)  # (N, 3 heads, 5 queries, 4)
        k = torch.ones(x.shape[0], 3, 6, 4)  # 6 keys
        v = torch.ones(x.shape[0], 3, 6, 7)  # values of width 7
        mask = torch.zeros(5, 6)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def test_sdpa_is_counted_by_hand():
    result = get_flops(OneAttention(), (2, 1, 5, 4))
    linear = 2 * 5 * 4 * 12
    qk = 2 * 3 * 5 * 6 * 4  # batch · heads · Nq · Nk · d
    pv = 2 * 3 * 5 * 6 * 7  # batch · heads · Nq · Nk · d_v
    assert result['flops'] == linear + qk + pv
    assert result['params'] == 4 * 12 + 12
    assert 'aten::scaled_dot_product_attention' not in result['unsupported_ops']


def test_model_mode_is_restored_and_shape_checked():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    result = get_flops(model, (3, 10, 10))
    assert result['flops'] == 8 * 8 * 4 * 3 * 9 + 8 * 8 * 4 * 2  # conv MACs + BN (eval: 2 per element)
    assert model.training
    with pytest.raises(ValueError, match='input_shape'):
        get_flops(model, (10, 10))


class AttentionOnly(nn.Module):

    def __init__(self, size, pale):
        super().__init__()
        self.attn = PaleAttention(embed_dims=8, num_heads=4)
        self.size, self.pale = size, pale

    def forward(self, x):
        return self.attn(x[:, 0], PaleLayouts.build(self.size, self.pale))


@pytest.mark.parametrize('fused', [True, False])
def test_pale_attention_flops(fused):
    # A 9x10 map with pale 3 pads to 9x12: the paper's eq. 5 on the padded map,
    # hw·c·(s_r·Wp + s_c·Hp) for attention, plus the convolutions, proj and BN.
    c, (h, w), (hp, wp), s = 8, (9, 10), (9, 12), 3
    with fused_attention(fused):
        flops = get_flops(AttentionOnly((h, w), (s, s)), (1, 1, h * w, c))['flops']
    convs = 3 * (9 * c + c * c) * h * w  # depthwise 3x3 and pointwise of q, k, v
    proj = c * c * h * w
    batch_norm = 3 * 2 * c * h * w
    attention = c * hp * wp * (s * wp + s * hp)
    assert flops == convs + proj + batch_norm + attention


@pytest.mark.parametrize('arch,spec_gflops', [('t', 4.20), ('s', 8.98), ('b', 15.53)])
def test_pale_flops_match_spec(arch, spec_gflops):
    model = PaleTransformer(arch=arch, out_indices=(3, ))
    gflops = get_flops(model, (3, 224, 224))['flops'] / 1e9
    assert abs(gflops - spec_gflops) / spec_gflops < 0.02, gflops
