"""SGFormer: structure against the released key lists, the semantics of the
spec checked against slow loop-based re-derivations, and the dense-prediction
rules (any size, padding, reallocation remainder)."""
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmvit_backbones.models.backbones import SGFormer
from mmvit_backbones.models.backbones.sg_former import (
    GlobalAttention,
    HybridScaleAttention,
    SelfGuidedAttention,
    key_token_shares,
    quantile_group_lengths,
    reallocation_plan,
    sincos_pos_embed,
)
from mmvit_backbones.models.layers import fused_attention

KEYS = osp.join(osp.dirname(__file__), '..', 'fixtures', 'keys')
TINY = dict(embed_dims=[16, 32, 64, 32], depths=[2, 2, 2, 1], num_heads=[2, 2, 4, 2])
SPEC_PARAMS = {'s': 22_545_981, 'm': 38_689_316, 'b': 77_950_293}


def read_keys(arch):
    entries = []
    with open(osp.join(KEYS, f'sg_former_{arch}.txt')) as f:
        for line in f:
            name, shape = line.rstrip('\n').split('\t')
            entries.append((name, tuple(int(s) for s in shape.strip('()').split(',') if s.strip())))
    return entries


def tiny(**kwargs):
    torch.manual_seed(0)
    model = SGFormer(arch=TINY, **kwargs)
    model.init_weights()
    return model


def stage_sizes(h, w):
    sizes = [(math.ceil(math.ceil(h / 2) / 2), math.ceil(math.ceil(w / 2) / 2))]
    for _ in range(3):
        sizes.append((math.ceil(sizes[-1][0] / 2), math.ceil(sizes[-1][1] / 2)))
    return sizes


# -- structure ------------------------------------------------------------------
@pytest.mark.parametrize('arch', ['s', 'm', 'b'])
def test_released_keys_shapes_and_parameter_counts(arch):
    model = SGFormer(arch=arch)
    released = read_keys(arch)
    head = [(k, s) for k, s in released if k.startswith('head.')]
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == [
        (k, s) for k, s in released if not k.startswith('head.')]
    params = sum(p.numel() for p in model.parameters())
    assert params + sum(math.prod(s) for _, s in head) == SPEC_PARAMS[arch]
    # Stochastic depth defaults to the trained value, reached by the last block.
    trained = {'s': 0.1, 'm': 0.2, 'b': 0.4}[arch]
    assert model.block4[-1].drop_path.drop_prob == pytest.approx(trained)
    assert model.block1[0].drop_path.drop_prob == 0


@pytest.mark.parametrize('arch,gflop', [('s', 9.568), ('m', 14.854), ('b', 31.086)])
def test_matmul_and_conv_flops_match_the_reference(arch, gflop):
    # The spec's torch.utils.flop_counter figures of the reference at 224 (2 FLOP per MAC, matmuls and
    # convs only, 1000-class head included): they pin every attention's query and key counts.
    from torch.utils.flop_counter import FlopCounterMode
    with torch.device('meta'):
        model = SGFormer(arch=arch).eval()
        x = torch.rand(1, 3, 224, 224)
    with torch.no_grad(), FlopCounterMode(display=False) as counter, fused_attention(False):
        model(x)  # the plain path: the counter does not see CPU SDPA kernels
    head = 2 * model.embed_dims[3] * 1000
    assert round((counter.get_total_flops() + head) / 1e9, 3) == gflop


def test_block_types_alternate_and_stage4_is_global():
    model = SGFormer(arch='s')
    for stage in (model.block1, model.block2, model.block3):
        kinds = [type(block.attn) for block in stage]
        assert kinds == [HybridScaleAttention, SelfGuidedAttention] * (len(stage) // 2)
    assert all(isinstance(block.attn, GlobalAttention) for block in model.block4)
    assert [model.block1[1].attn.merge_rates, model.block2[1].attn.merge_rates,
            model.block3[1].attn.merge_rates] == [(196, 56, 28), (49, 14, 7), (2, 1)]
    assert [model.block1[0].attn.sr_ratio, model.block2[0].attn.sr_ratio,
            model.block3[0].attn.sr_ratio] == [8, 4, 2]


def test_invalid_configs_raise_clear_errors():
    with pytest.raises(ValueError, match='even depth'):
        SGFormer(arch=dict(TINY, depths=[2, 3, 2, 1]))
    with pytest.raises(ValueError, match='even num_heads'):
        SGFormer(arch=dict(TINY, num_heads=[1, 2, 4, 2]))
    with pytest.raises(ValueError, match='not divisible'):
        SGFormer(arch=dict(TINY, num_heads=[2, 2, 6, 2]))
    with pytest.raises(ValueError, match='one per stage'):
        SGFormer(arch=dict(TINY, depths=[2, 2, 2]))
    with pytest.raises(TypeError, match='stable_sort'):
        SGFormer(arch=TINY, stable_sort='yes')


# -- semantics: position embedding, stem, FFN ------------------------------------
def test_sincos_pos_embed_by_hand():
    table = sincos_pos_embed(8, (2, 3))  # omega = (1, 1/100)
    row, col = 1, 2
    expected = torch.tensor([math.sin(col), math.sin(col / 100), math.cos(col), math.cos(col / 100),
                             math.sin(row), math.sin(row / 100), math.cos(row), math.cos(row / 100)])
    assert table.shape == (6, 8)
    torch.testing.assert_close(table[row * 3 + col], expected)
    model = SGFormer(arch=TINY)
    torch.testing.assert_close(model.pos_embed[0], sincos_pos_embed(16, (56, 56)))


def test_pos_embed_identity_at_native_size_resized_elsewhere():
    model = tiny().eval()
    assert model._pos_embed_at((56, 56)) is model.pos_embed
    grid = model.pos_embed.detach().reshape(1, 56, 56, 16).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(9, 12), mode='bicubic', align_corners=False).flatten(2).transpose(1, 2)
    with torch.no_grad():
        torch.testing.assert_close(model._pos_embed_at((9, 12)), expected)
    model.train()  # while training, gradients reach pos_embed at any size
    model(torch.rand(1, 3, 33, 47))[0].sum().backward()
    assert model.pos_embed.grad is not None and model.pos_embed.grad.abs().sum() > 0


def test_stem_downsample_and_ffn_follow_the_spec():
    torch.manual_seed(0)
    model = tiny()
    for p in model.parameters():  # non-trivial affine norms
        p.data.normal_(0, 0.5)
    x = torch.randn(2, 3, 18, 13)
    stem = model.patch_embed1
    y = x
    for i, act in ((0, True), (2, True), (4, False)):
        unit = stem.conv[i]
        y = F.conv2d(y, unit.c.weight, stride=unit.c.stride, padding=1)
        y = F.group_norm(y, 1, unit.bn.weight, unit.bn.bias, 1e-5)
        y = F.gelu(y) if act else y
    expected = F.layer_norm(y.flatten(2).transpose(1, 2), (16, ), stem.norm.weight, stem.norm.bias, 1e-5)
    tokens, size = stem(x)
    assert size == (5, 4)
    torch.testing.assert_close(tokens, expected)

    down = model.patch_embed2
    m = torch.randn(2, 16, 5, 4)
    y = F.gelu(F.group_norm(F.conv2d(m, down.conv1.c.weight), 1, down.conv1.bn.weight, down.conv1.bn.bias))
    y = F.conv2d(y, down.conv2.c.weight, stride=2, padding=1, groups=32)
    y = F.gelu(F.group_norm(y, 1, down.conv2.bn.weight, down.conv2.bn.bias))
    y = F.group_norm(F.conv2d(y, down.conv3.c.weight), 1, down.conv3.bn.weight, down.conv3.bn.bias)
    tokens, size = down(m)
    assert size == (3, 2)
    torch.testing.assert_close(tokens, y.flatten(2).transpose(1, 2))

    mlp = model.block1[0].mlp
    t = torch.randn(2, 20, 16)
    h = F.linear(t, mlp.fc1.weight, mlp.fc1.bias)
    conv = F.conv2d(h.transpose(1, 2).reshape(2, 64, 5, 4), mlp.dwconv.dwconv.weight, mlp.dwconv.dwconv.bias,
                    padding=1, groups=64)
    expected = F.linear(F.gelu(h + conv.flatten(2).transpose(1, 2)), mlp.fc2.weight, mlp.fc2.bias)
    torch.testing.assert_close(mlp(t, (5, 4)), expected)


# -- semantics: attention, against slow loop-based re-derivations of the spec --------
def lepe_and_proj(attn, out, x, h, w):
    b, n, c = x.shape
    lepe = F.linear(x, attn.lepe_linear.weight, attn.lepe_linear.bias).transpose(1, 2).reshape(b, c, h, w)
    lepe = F.conv2d(lepe, attn.lepe_conv.weight, attn.lepe_conv.bias, padding=1, groups=c)
    return F.linear(out + lepe.flatten(2).transpose(1, 2), attn.proj.weight, attn.proj.bias)


def slow_hybrid(attn, x, h, w):
    """Per head, per window; border windows cropped (no padding); coarse input zero-padded."""
    b, n, c = x.shape
    heads, d, sr, ws = attn.num_heads // 2, c // attn.num_heads, attn.sr_ratio, 7
    scale = d**-0.5
    xm = x.transpose(1, 2).reshape(b, c, h, w)
    xm = F.pad(xm, (0, -w % sr, 0, -h % sr))
    merged = F.conv2d(xm, attn.sr.weight, attn.sr.bias, stride=sr)
    hc, wc = merged.shape[2:]
    merged = F.gelu(F.layer_norm(merged.flatten(2).transpose(1, 2), (c, ), attn.norm.weight, attn.norm.bias))
    kv = F.linear(merged, attn.kv1.weight, attn.kv1.bias)
    q = F.linear(x, attn.q1.weight, attn.q1.bias)
    coarse, coarse_sig = torch.zeros(b, n, c // 2), torch.zeros(b, hc * wc)
    for head in range(heads):
        hs = slice(head * d, (head + 1) * d)
        k, v = kv[..., hs], kv[..., c // 2:][..., hs]
        p = torch.softmax(q[..., hs] @ k.transpose(1, 2) * scale, -1)
        coarse[..., hs] = p @ v
        coarse_sig += p.mean(1) / heads
    coarse_sig = coarse_sig.reshape(b, hc, wc).repeat_interleave(sr, 1).repeat_interleave(sr, 2)[:, :h, :w]

    q = F.linear(x, attn.q2.weight, attn.q2.bias)
    kv = F.linear(x, attn.kv2.weight, attn.kv2.bias)
    local, local_sig = torch.zeros(b, n, c // 2), torch.zeros(b, n)
    for top in range(0, h, ws):
        for left in range(0, w, ws):
            idx = [r * w + col for r in range(top, min(top + ws, h)) for col in range(left, min(left + ws, w))]
            for head in range(heads):
                hs = slice(head * d, (head + 1) * d)
                k, v = kv[:, idx][..., hs], kv[:, idx][..., c // 2:][..., hs]
                p = torch.softmax(q[:, idx][..., hs] @ k.transpose(1, 2) * scale, -1)
                local[:, idx, hs] = p @ v
                local_sig[:, idx] += p.mean(1) / heads
    out = lepe_and_proj(attn, torch.cat([coarse, local], -1), x, h, w)
    return out, local_sig.reshape(b, h, w) + coarse_sig


def slow_reallocate(attn, tokens, order):
    """Group by quantile, pad a group at its least significant end, merge runs of r."""
    n, c = tokens.shape
    rates = attn.merge_rates
    if len(rates) == 3:
        lengths = [n // 4, n - 2 * (n // 4), n // 4]
    else:
        lengths = [n // 2, n - n // 2]
    ordered = tokens[order]
    keys, start = [], 0
    for g, (length, rate) in enumerate(zip(lengths, rates)):
        group = ordered[start:start + length]
        start += length
        if length == 0:
            continue
        group = torch.cat([group[:1].expand(-length % rate, c), group])
        merge = getattr(attn, f'f{g + 1}')
        for run in range(len(group) // rate):
            keys.append(merge.weight[0] @ group[run * rate:(run + 1) * rate] + merge.bias)
    return torch.stack(keys)


def slow_guided(attn, x, h, w, significance):
    b, n, c = x.shape
    heads, d = attn.num_heads // 2, c // attn.num_heads
    q = F.linear(x, attn.q.weight, attn.q.bias)
    out = torch.zeros(b, n, c)
    for i in range(b):
        rows = slow_reallocate(attn, x[i], torch.sort(significance[i].reshape(-1))[1])
        columns = slow_reallocate(attn, x[i].reshape(h, w, c).transpose(0, 1).reshape(n, c),
                                  torch.sort(significance[i].t().reshape(-1))[1])
        for half, (seq, kv) in enumerate(((rows, attn.kv1), (columns, attn.kv2))):
            kv = F.linear(seq, kv.weight, kv.bias)
            for head in range(heads):
                hs = slice(head * d, (head + 1) * d)
                qs = slice((half * heads + head) * d, (half * heads + head + 1) * d)
                p = torch.softmax(q[i][:, qs] @ kv[:, hs].t() * d**-0.5, -1)
                out[i, :, qs] = p @ kv[:, c // 2:][:, hs]
    return lepe_and_proj(attn, out, x, h, w)


def randomized(module, std=0.3):
    torch.manual_seed(1)
    for p in module.parameters():
        p.data.normal_(0, std)
    return module


@pytest.mark.parametrize('sr,size', [(2, (14, 14)), (8, (56, 56)), (8, (9, 10)), (4, (17, 12)), (2, (3, 2))])
def test_hybrid_scale_attention_matches_slow_derivation(sr, size):
    attn = randomized(HybridScaleAttention(16, 4, sr, 7))
    x = torch.randn(2, size[0] * size[1], 16)
    out, significance = attn(x, size)
    expected_out, expected_sig = slow_hybrid(attn, x, *size)
    torch.testing.assert_close(out, expected_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(significance, expected_sig, rtol=1e-5, atol=1e-6)
    if size[0] % 7 == 0 and size[1] % 7 == 0 and size[0] % sr == 0:
        # Native: each window's local part sums to 1, each coarse key's share is spread over sr x sr tokens.
        windows = size[0] * size[1] // 49
        torch.testing.assert_close(significance.sum((1, 2)), torch.full((2, ), windows + sr * sr * 1.))


def test_significance_by_hand_with_uniform_attention():
    attn = randomized(HybridScaleAttention(8, 2, 8, 7))
    for layer in (attn.q1, attn.q2):  # zero queries: every key gets the same attention
        layer.weight.data.zero_()
        layer.bias.data.zero_()
    _, significance = attn(torch.randn(1, 81, 8), (9, 9))  # windows of 49, 14, 14, 4 real tokens
    coarse = 1 / 4  # 9x9 padded to 16x16: 2x2 coarse tokens
    assert significance[0, 0, 0].item() == pytest.approx(1 / 49 + coarse)
    assert significance[0, 0, 8].item() == pytest.approx(1 / 14 + coarse)
    assert significance[0, 8, 0].item() == pytest.approx(1 / 14 + coarse)
    assert significance[0, 8, 8].item() == pytest.approx(1 / 4 + coarse)


@pytest.mark.parametrize('rates,size', [((196, 56, 28), (56, 56)), ((49, 14, 7), (9, 7)), ((2, 1), (14, 14)),
                                        ((2, 1), (3, 3)), ((4, 2, 1), (1, 1))])
def test_self_guided_attention_matches_slow_derivation(rates, size):
    attn = randomized(SelfGuidedAttention(16, 4, rates), std=0.1)
    x = torch.randn(2, size[0] * size[1], 16)
    significance = torch.rand(2, *size)
    significance[:, :2] = 0.5  # ties: both sorts must be torch.sort's defaults, as in the reference
    out, new = attn(x, size, significance)
    assert new is None
    torch.testing.assert_close(out, slow_guided(attn, x, *size, significance), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match='significance'):
        attn(x, size, None)


def test_global_attention_matches_slow_derivation():
    attn = randomized(GlobalAttention(16, 4))
    x, (h, w), d = torch.randn(2, 12, 16), (3, 4), 4
    q = F.linear(x, attn.q.weight, attn.q.bias)
    kv = F.linear(x, attn.kv.weight, attn.kv.bias)
    out = torch.zeros_like(x)
    for head in range(4):
        hs = slice(head * d, (head + 1) * d)
        p = torch.softmax(q[..., hs] @ kv[..., hs].transpose(1, 2) * d**-0.5, -1)
        out[..., hs] = p @ kv[..., 16:][..., hs]
    torch.testing.assert_close(attn(x, (h, w))[0], lepe_and_proj(attn, out, x, h, w))


# -- semantics: reallocation by hand --------------------------------------------
def test_quantile_split_by_hand():
    assert quantile_group_lengths(3136, 3) == (784, 1568, 784)  # the reference's quartiles
    assert quantile_group_lengths(196, 2) == (98, 98)
    assert quantile_group_lengths(9, 3) == (2, 5, 2)  # leftover to the middle group
    assert quantile_group_lengths(5, 2) == (2, 3)  # leftover to the top half
    assert quantile_group_lengths(1, 3) == (0, 1, 0)
    assert quantile_group_lengths(1, 2) == (0, 1)
    with pytest.raises(ValueError, match='valid'):
        quantile_group_lengths(9, 4)


def test_key_token_counts_match_the_reference_and_scale_with_area():
    # Spec table at 224: 4 + 28 + 28 = 60, 60, 49 + 98 = 147; at 448 (2x2 the area) four times that.
    assert [reallocation_plan(n, r).num_keys for n, r in ((3136, (196, 56, 28)), (784, (49, 14, 7)),
                                                          (196, (2, 1)))] == [60, 60, 147]
    assert [reallocation_plan(n, r).num_keys for n, r in ((12544, (196, 56, 28)), (3136, (49, 14, 7)),
                                                          (784, (2, 1)))] == [240, 240, 588]
    assert not reallocation_plan(3136, (196, 56, 28)).padded
    # 800x1216: stage sizes 200x304, 100x152, 50x76; each group gives ceil(length / rate) keys.
    assert reallocation_plan(200 * 304, (196, 56, 28)).counts == (78, 543, 543)
    assert reallocation_plan(50 * 76, (2, 1)).counts == (950, 1900)


def test_reallocation_remainder_rule_by_hand():
    plan = reallocation_plan(9, (4, 2, 1))
    assert (plan.lengths, plan.counts) == ((2, 5, 2), (1, 3, 2))
    assert plan.positions == [0, 0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8]

    attn = SelfGuidedAttention(2, 2, (4, 2, 1))
    with torch.no_grad():
        attn.f1.weight.copy_(torch.tensor([[1., 10., 100., 1000.]]))
        attn.f1.bias.fill_(0.5)
        attn.f2.weight.copy_(torch.tensor([[1., 2.]]))
        attn.f2.bias.zero_()
        attn.f3.weight.fill_(3.)
        attn.f3.bias.zero_()
    tokens = torch.arange(9.).reshape(1, 9, 1) * torch.tensor([1., -1.])  # token t = (t, -t)
    significance = torch.tensor([[5., 3., 8., 0., 1., 7., 2., 6., 4.]])  # ascending: 3 4 6 1 8 0 7 5 2
    keys = attn.reallocate(tokens, significance)[0, :, 0]
    expected = [1 * 3 + 10 * 3 + 100 * 3 + 1000 * 4 + 0.5,  # g1 = (3, 4), padded with 3
                1 * 6 + 2 * 6, 1 * 1 + 2 * 8, 1 * 0 + 2 * 7,  # g2 = (6, 1, 8, 0, 7), padded with 6
                3 * 5, 3 * 2]  # g3 = (5, 2)
    assert keys.tolist() == expected
    assert attn.reallocate(tokens, significance)[0, :, 1].tolist() == [-4333 + 0.5, -18, -17, -14, -15, -6]


def test_stable_sort_breaks_ties_by_position_in_each_flattening():
    attn = SelfGuidedAttention(4, 2, (2, 1), stable_sort=True)
    with torch.no_grad():
        attn.f1.weight.copy_(torch.tensor([[1., 10.]]))
        attn.f1.bias.zero_()
        attn.f2.weight.fill_(1.)
        attn.f2.bias.zero_()
    tokens = torch.arange(6.).reshape(1, 6, 1).expand(1, 6, 4)
    ties = torch.zeros(1, 6)
    # Halves (0 1 2 | 3 4 5); the lower one is padded with its first token: runs (0 0) (1 2).
    assert attn.reallocate(tokens, ties)[0, :, 0].tolist() == [0 + 10 * 0, 1 + 10 * 2, 3, 4, 5]
    # The column-major flattening of a 2x3 map is 0 3 1 4 2 5; ties keep that order.
    columns = tokens.view(1, 2, 3, 4).transpose(1, 2).reshape(1, 6, 4)
    assert attn.reallocate(columns, ties)[0, :, 0].tolist() == [0 + 10 * 0, 3 + 10 * 1, 4, 2, 5]


def test_key_token_shares_add_up_to_the_keys():
    significance = torch.rand(2, 9, 10)
    shares = key_token_shares(significance, (4, 2, 1))
    plan = reallocation_plan(90, (4, 2, 1))
    torch.testing.assert_close(shares.sum((1, 2)), torch.full((2, ), float(plan.num_keys)))
    top = significance.flatten(1).argmax(1)
    assert shares.flatten(1)[torch.arange(2), top].tolist() == [1., 1.]  # rate 1: a key of its own
    bottom = significance.flatten(1).argmin(1)
    assert shares.flatten(1)[torch.arange(2), bottom].tolist() == pytest.approx([6 / 22] * 2)  # 22 -> 6 keys


# -- the whole backbone -----------------------------------------------------------
# The other sizes of the backbone contract are in test_contract.py.
@pytest.mark.parametrize('size', [(112, 137), (64, 2048)])
def test_any_input_size_gives_finite_features_of_the_right_shape(size):
    model = tiny().eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, *size))
    assert [tuple(o.shape) for o in outs] == [(1, c, *s) for c, s in zip(TINY['embed_dims'], stage_sizes(*size))]
    assert all(torch.isfinite(o).all() for o in outs)


def test_detection_size_with_a_reduced_model():
    model = tiny(out_indices=(3, )).eval()
    with torch.no_grad():
        (out, ) = model(torch.rand(1, 3, 800, 1216))
    assert out.shape == (1, 32, 25, 38) and torch.isfinite(out).all()


def test_full_small_model_at_a_detection_like_size():
    model = SGFormer(arch='s').eval()
    with torch.no_grad():
        outs = model(torch.rand(2, 3, 65, 97))
    assert [tuple(o.shape) for o in outs] == [(2, c, *s) for c, s in zip((64, 128, 256, 512), stage_sizes(65, 97))]
    assert all(torch.isfinite(o).all() for o in outs)


def test_significance_on_request_without_touching_the_module():
    model = tiny().eval()
    x = torch.rand(2, 3, 64, 80)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    attributes = set(vars(model))
    with torch.no_grad():
        plain = model(x)
        outs, maps = model.forward_with_significance(x)
        again = model(x)
    assert all(torch.equal(a, b) for a, b in zip(plain, outs)) and all(torch.equal(a, b) for a, b in zip(plain, again))
    assert [tuple(m.shape) for m in maps] == [(2, *s) for s in stage_sizes(64, 80)[:3]]
    for significance, (h, w) in zip(maps, stage_sizes(64, 80)):
        assert torch.isfinite(significance).all() and (significance > 0).all()
        # The local part of each (possibly cropped) window sums to 1.
        assert significance.sum((1, 2)).min() >= math.ceil(h / 7) * math.ceil(w / 7) - 1e-4
    assert set(vars(model)) == attributes
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_significance_stays_float32_under_bf16_autocast():
    model = tiny().eval()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        outs, maps = model.forward_with_significance(torch.rand(1, 3, 45, 61))
    assert [tuple(m.shape) for m in maps] == [(1, *s) for s in stage_sizes(45, 61)[:3]]
    assert all(m.dtype == torch.float32 and torch.isfinite(m).all() for m in maps)


def slow_backbone(model, x):
    """The whole network composed from the slow attentions (spec section 2)."""
    outs, significance = [], None
    for i in range(4):
        tokens, size = getattr(model, f'patch_embed{i + 1}')(outs[-1] if i else x)
        if i == 0:
            tokens = tokens + model.pos_embed  # native size: added as stored
        for block in getattr(model, f'block{i + 1}'):
            normed = block.norm1(tokens)
            if isinstance(block.attn, HybridScaleAttention):
                out = slow_hybrid(block.attn, normed, *size)[0]
                # The slow significance differs in rounding (checked to 1e-6 above); significance ties
                # then sort differently and move outputs by ~1e-4 (spec 3.2), so sort the module's.
                significance = block.attn(normed, size)[1]
            elif isinstance(block.attn, SelfGuidedAttention):
                out, significance = slow_guided(block.attn, normed, *size, significance), None
            else:
                out = block.attn(normed, size)[0]  # checked against its slow form above
            tokens = tokens + out
            tokens = tokens + block.mlp(block.norm2(tokens), size)
        tokens = getattr(model, f'norm{i + 1}')(tokens)
        outs.append(tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *size))
    return outs


def test_whole_backbone_at_a_native_size_matches_its_slow_composition():
    model = tiny().eval()
    x = torch.rand(1, 3, 224, 224)
    # The plain path, whose hybrid-scale outputs round as the slow ones do: a 1e-7 difference can reorder two
    # tokens of tied significance and move later stages by ~1e-4 (spec 3.2). Fused == plain is tested above.
    with torch.no_grad(), fused_attention(False):
        for out, expected in zip(model(x), slow_backbone(model, x)):
            torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_fused_and_plain_paths_agree_inside_one_attention():
    guided = randomized(SelfGuidedAttention(16, 4, (4, 2, 1)), std=0.1)
    global_attn = randomized(GlobalAttention(16, 4))
    x, significance = torch.randn(2, 30, 16), torch.rand(2, 5, 6)
    fused = guided(x, (5, 6), significance)[0], global_attn(x, (5, 6))[0]
    with fused_attention(False):
        plain = guided(x, (5, 6), significance)[0], global_attn(x, (5, 6))[0]
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('shape', [(2, 8, 13, 19), (3, 5, 7)])
def test_single_group_norm_equals_group_norm(shape):
    from mmvit_backbones.models.backbones.sg_former import SingleGroupNorm
    torch.manual_seed(0)
    fast, reference = SingleGroupNorm(shape[1]), nn.GroupNorm(1, shape[1])
    for norm in (fast, reference):
        norm.weight.data = torch.linspace(0.5, 1.5, shape[1])
        norm.bias.data = torch.linspace(-0.2, 0.3, shape[1])
    x = torch.randn(shape) * 3 + 1
    results = []
    for norm in (fast, reference):
        inp = x.clone().requires_grad_()
        out = norm(inp)
        (out * torch.cos(out)).sum().backward()
        results.append((out, inp.grad, norm.weight.grad, norm.bias.grad))
    for a, b in zip(*results):  # the weight gradient sums over C·H·W in another order
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # Under autocast float32 out, as CUDA autocast makes group_norm's; without it the input dtype.
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert fast(x.bfloat16()).dtype == torch.float32
    assert fast.double()(x.double()).dtype == torch.float64
