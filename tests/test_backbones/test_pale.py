"""Pale Transformer backbone: semantics on hand-checkable cases, options, any input size."""
import math

import pytest
import torch
from mmengine.registry import MODELS
from torch import nn

import mmvit_backbones  # noqa: F401  (registers the models)
from mmvit_backbones.models.backbones import PaleTransformer
from mmvit_backbones.models.backbones.pale_transformer import PaleAttention, PaleBlock, PaleLayouts
from mmvit_backbones.models.layers import fused_attention, grid_partition

# Small enough for many forwards on CPU; two heads per branch where it matters.
TINY = dict(embed_dims=[8, 16, 32, 64], depths=[1, 1, 2, 1], num_heads=[2, 2, 4, 4])


def tiny(**kwargs) -> PaleTransformer:
    torch.manual_seed(0)
    model = PaleTransformer(arch=TINY, **kwargs)
    model.init_weights()
    return model


def down(size: int, stride: int) -> int:
    return -(-size // stride)


def expected_sizes(h: int, w: int):
    """Stage sizes of the paper's merging: 7x7 s4 p3, then 3x3 s2 p1 (ceil division)."""
    sizes, h, w = [], down(h, 4), down(w, 4)
    for _ in range(4):
        sizes.append((h, w))
        h, w = down(h, 2), down(w, 2)
    return sizes


# ----------------------------------------------------------------------------
# Parameters (paper Table 1 / spec) and registration
# ----------------------------------------------------------------------------
def closed_form_params(dims, depths, in_channels=3, num_classes=1000):
    """Classifier parameter count written out from the spec, layer by layer."""
    total, prev = 0, in_channels
    for i, (c, depth) in enumerate(zip(dims, depths)):
        k = 7 if i == 0 else 3
        total += k * k * prev * c + c + 2 * c  # merging conv (+bias) and its LayerNorm
        block = (9 * c + c  # CPE: depthwise 3x3 with bias
                 + 2 * c  # norm1
                 + 3 * (9 * c + 2 * c + c * c + c)  # q, k, v: depthwise, BN, pointwise (+bias)
                 + c * c + c  # proj
                 + 2 * c  # norm2
                 + 4 * c * c + 4 * c + 4 * c * c + c)  # MLP
        total += depth * block
        prev = c
    return total + 2 * prev + prev * num_classes + num_classes  # final LayerNorm and linear head


@pytest.mark.parametrize('arch,spec_params', [('t', 21.75e6), ('s', 48.31e6), ('b', 85.32e6)])
def test_param_counts(arch, spec_params):
    model = PaleTransformer(arch=arch, out_indices=(3, ))
    cfg = PaleTransformer.arch_zoo[arch]
    backbone = sum(p.numel() for p in model.parameters())
    with_head = backbone + cfg['embed_dims'][-1] * 1000 + 1000
    assert with_head == closed_form_params(cfg['embed_dims'], cfg['depths'])
    assert abs(with_head - spec_params) / spec_params < 0.01
    assert model.depths == [2, 2, 16, 2] and model.pale_size == [7] * 4


def test_registered_in_root_models():
    # mmdet / mmseg / mmpretrain registries fall back to the root one.
    assert isinstance(MODELS.build(dict(type='PaleTransformer', arch=TINY)), PaleTransformer)


# ----------------------------------------------------------------------------
# Which tokens form a group (interlaced, not contiguous)
# ----------------------------------------------------------------------------
def group_members(layout, branch):
    """Sets of (row, col) of each group, read off grid_partition of a coordinate map."""
    hp, wp = layout.rows.padded_size
    rows, cols = torch.meshgrid(torch.arange(hp), torch.arange(wp), indexing='ij')
    coords = torch.stack([rows, cols], dim=-1)[None]
    branch_layout = layout.rows if branch == 'row' else layout.cols
    group, interval = branch_layout.group, branch_layout.interval
    return [set(map(tuple, g.tolist())) for g in grid_partition(coords, group, interval)]


def test_row_and_column_groups_are_interlaced():
    layout = PaleLayouts.build((14, 14), (7, 7))
    assert layout.rows.padded_size == (14, 14) and layout.rows.key_bias is None and layout.cols.key_bias is None
    row_groups = group_members(layout, 'row')
    col_groups = group_members(layout, 'col')
    all_cols, all_rows = range(14), range(14)
    assert row_groups == [{(r, c) for r in (0, 2, 4, 6, 8, 10, 12) for c in all_cols},
                          {(r, c) for r in (1, 3, 5, 7, 9, 11, 13) for c in all_cols}]
    assert col_groups == [{(r, c) for c in (0, 2, 4, 6, 8, 10, 12) for r in all_rows},
                          {(r, c) for c in (1, 3, 5, 7, 9, 11, 13) for r in all_rows}]


def test_groups_of_a_padded_non_square_map():
    # 9x10 with pale 3: rows need no padding (3 groups), columns pad to 12 (4 groups).
    layout = PaleLayouts.build((9, 10), (3, 3))
    assert layout.rows.padded_size == layout.cols.padded_size == (9, 12)
    rows = [{r for r, _ in g} for g in group_members(layout, 'row')]
    cols = [{c for _, c in g} for g in group_members(layout, 'col')]
    assert rows == [{0, 3, 6}, {1, 4, 7}, {2, 5, 8}]
    assert cols == [{0, 4, 8}, {1, 5, 9}, {2, 6, 10}, {3, 7, 11}]
    assert layout.rows.key_bias.shape == (3, 1, 1, 3 * 12)
    # Padded columns 10 and 11 are masked in every group that holds them.
    hp, wp = layout.rows.padded_size
    index = torch.arange(hp * wp).view(1, hp, wp, 1)
    for branch in (layout.rows, layout.cols):
        column = grid_partition(index, branch.group, branch.interval)[..., 0] % wp
        assert torch.equal(torch.isinf(branch.key_bias[:, 0, 0]), column >= 10)
        assert torch.equal(branch.query_mask, column < 10)


def test_map_smaller_than_pale_is_one_group():
    layout = PaleLayouts.build((5, 4), (7, 7))
    assert layout.rows.padded_size == (5, 4) and layout.rows.group == layout.cols.group == (5, 4)
    assert group_members(layout, 'row') == [{(r, c) for r in range(5) for c in range(4)}]
    assert group_members(layout, 'col') == [{(r, c) for r in range(5) for c in range(4)}]


# ----------------------------------------------------------------------------
# The attention itself against a per-token reference written from the paper
# ----------------------------------------------------------------------------
def attend(attn, q, k, v, layout):
    """The attention of separate (B, H, W, C) q, k, v maps (it takes them as one [q | k | v] map)."""
    return attn.attend(torch.cat([q, k, v], dim=-1), layout)


def reference_pale_attention(q, k, v, num_heads, pale):
    """Token by token: the first C/2 channels attend over the real tokens whose
    row is congruent modulo N_r = ceil(H / s_r) (interlaced rows), the last C/2
    over the columns congruent modulo N_c; h/2 heads each, scale d ** -0.5."""
    b, h, w, c = q.shape
    s_r, s_c = min(pale, h), min(pale, w)
    n_r, n_c = math.ceil(h / s_r), math.ceil(w / s_c)
    half, d = c // 2, c // num_heads
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    out = torch.zeros_like(q)
    for y in range(h):
        for x in range(w):
            row_keys = rows % n_r == y % n_r
            col_keys = cols % n_c == x % n_c
            for keys, offset in ((row_keys, 0), (col_keys, half)):
                for head in range(num_heads // 2):
                    ch = slice(offset + head * d, offset + (head + 1) * d)
                    logits = (k[:, keys, ch] @ q[:, y, x, ch, None])[..., 0] * d**-0.5
                    out[:, y, x, ch] = (logits.softmax(-1)[..., None] * v[:, keys, ch]).sum(1)
    return out


# Interlaced without padding, padded columns, padded rows and columns, smaller than the pale.
@pytest.mark.parametrize('size,pale', [((6, 8), 3), ((9, 10), 3), ((8, 13), 7), ((5, 4), 7)])
@pytest.mark.parametrize('fused', [True, False])
def test_attention_matches_per_token_reference(size, pale, fused):
    torch.manual_seed(0)
    attn = PaleAttention(embed_dims=8, num_heads=4)
    q, k, v = (torch.randn(2, *size, 8) for _ in range(3))
    with fused_attention(fused):
        out = attend(attn, q, k, v, PaleLayouts.build(size, (pale, pale)))
    torch.testing.assert_close(out, reference_pale_attention(q, k, v, 4, pale), rtol=1e-5, atol=1e-5)


def attended_keys(size, pale, query, channel):
    """Tokens whose value reaches ``query`` through ``channel`` (uniform attention)."""
    attn = PaleAttention(embed_dims=4, num_heads=2)
    q = torch.zeros(1, *size, 4)
    v = torch.zeros(1, *size, 4, requires_grad=True)
    attend(attn, q, q, v, PaleLayouts.build(size, (pale, pale)))[0, query[0], query[1], channel].backward()
    return {tuple(p) for p in (v.grad[0, ..., channel] != 0).nonzero().tolist()}


def test_a_token_attends_exactly_to_its_pale():
    # Token (3, 5) of a 14x14 map, pale 7: N_r = N_c = 2, so its row group is the
    # odd rows and its column group the odd columns (not rows 0-6 / columns 0-6).
    odd = (1, 3, 5, 7, 9, 11, 13)
    row_half = attended_keys((14, 14), 7, (3, 5), channel=0)
    col_half = attended_keys((14, 14), 7, (3, 5), channel=2)
    assert row_half == {(r, c) for r in odd for c in range(14)}
    assert col_half == {(r, c) for r in range(14) for c in odd}
    # Together: the pale, s_r·W + s_c·H − s_r·s_c tokens (paper, section PS-Attention).
    assert len(row_half | col_half) == 7 * 14 + 7 * 14 - 7 * 7


def test_padded_keys_are_masked():
    # Uniform attention over values of 1: any padded (zero) key taking weight
    # would pull an output below 1. 8 rows with pale 7 pad to 14, 13 columns to 14.
    attn = PaleAttention(embed_dims=4, num_heads=2)
    q = torch.randn(1, 8, 13, 4) * 0
    for fused in (True, False):
        with fused_attention(fused):
            out = attend(attn, q, q, torch.ones(1, 8, 13, 4), PaleLayouts.build((8, 13), (7, 7)))
        torch.testing.assert_close(out, torch.ones_like(out))
    # 8 rows, pale 7 -> N_r = 2: token (0, 0) sees the even rows that exist.
    assert attended_keys((8, 13), 7, (0, 0), channel=0) == {(r, c) for r in (0, 2, 4, 6) for c in range(13)}


def test_heads_split_between_branches():
    # C = 8, 4 heads: row heads own channels 0-1 and 2-3, column heads 4-5 and 6-7.
    torch.manual_seed(0)
    attn = PaleAttention(embed_dims=8, num_heads=4)
    layout = PaleLayouts.build((6, 6), (3, 3))
    q, k, v = (torch.randn(1, 6, 6, 8) for _ in range(3))
    base = attend(attn, q, k, v, layout)
    for channel, owner in ((0, slice(0, 2)), (3, slice(2, 4)), (4, slice(4, 6)), (7, slice(6, 8))):
        for tensor in ('q', 'k', 'v'):
            inputs = dict(q=q.clone(), k=k.clone(), v=v.clone())
            # Random, not constant: a constant shift of k would cancel in the softmax.
            inputs[tensor][..., channel] += torch.randn(1, 6, 6)
            changed = (attend(attn, layout=layout, **inputs) - base).abs().amax(dim=(0, 1, 2)) > 1e-6
            # q and k steer the whole head; a value channel only reaches itself.
            expected = torch.zeros(8, dtype=torch.bool)
            expected[owner if tensor != 'v' else channel] = True
            assert torch.equal(changed, expected), (tensor, channel)
    assert attn.scale == 2**-0.5


def test_attention_validates_heads():
    with pytest.raises(ValueError, match='even'):
        PaleAttention(embed_dims=12, num_heads=3)
    with pytest.raises(ValueError, match='divide'):
        PaleAttention(embed_dims=10, num_heads=4)


def test_block_follows_paper_equations():
    torch.manual_seed(0)
    block = PaleBlock(8, 2, 4., 0., dict(type='LN'), dict(type='BN')).eval()
    layout = PaleLayouts.build((5, 6), (7, 7))
    x = torch.randn(2, 30, 8)
    with torch.no_grad():
        x1 = x + block.cpe(x.transpose(1, 2).reshape(2, 8, 5, 6)).flatten(2).transpose(1, 2)
        x2 = x1 + block.attn(block.norm1(x1), layout)
        x3 = x2 + block.mlp.fc2(nn.functional.gelu(block.mlp.fc1(block.norm2(x2))))
        torch.testing.assert_close(block(x.view(2, 5, 6, 8), layout).view(2, 30, 8), x3)
    assert block.cpe.groups == 8 and block.cpe.bias is not None
    assert block.mlp.fc1.out_features == 32


# ----------------------------------------------------------------------------
# Whole backbone: sizes, paths, options
# ----------------------------------------------------------------------------
# The other sizes of the backbone contract are in test_contract.py.
@pytest.mark.parametrize('size', [(112, 137), (40, 2048)])
def test_any_input_size(size):
    model = tiny().eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    assert [tuple(o.shape) for o in outs] == [(1, c, *hw) for c, hw in zip(TINY['embed_dims'], expected_sizes(*size))]
    assert all(o.isfinite().all() for o in outs)


def test_detection_size_and_full_variant():
    # A detector-sized input on a cheap model, and the real Pale-T at a small odd size.
    model = tiny(out_indices=(3, )).eval()
    with torch.no_grad():
        (out, ) = model(torch.randn(1, 3, 800, 1216))
    assert out.shape == (1, 64, 25, 38) and out.isfinite().all()
    model = PaleTransformer('t').eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 65, 97))
    assert [tuple(o.shape) for o in outs] == [(2, c, *hw) for c, hw in zip((64, 128, 256, 512), expected_sizes(65, 97))]
    assert all(o.isfinite().all() for o in outs)


def test_bad_arguments():
    with pytest.raises(ValueError, match='one per stage'):
        PaleTransformer(arch=dict(embed_dims=[8] * 3, depths=[1] * 3, num_heads=[2] * 3))
    with pytest.raises(ValueError, match='even'):
        PaleTransformer(arch=dict(TINY, num_heads=[2, 2, 4, 3]))
    with pytest.raises(ValueError, match='pale_size'):
        PaleTransformer(arch=TINY, pale_size=(7, 7))


def test_out_indices_and_their_norms():
    model = tiny(out_indices=(1, -1))
    assert model.out_indices == [1, 3]
    assert hasattr(model, 'norm1') and hasattr(model, 'norm3') and not hasattr(model, 'norm0')
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 64]
    # Each output goes through its own LayerNorm: per token, zero mean and unit variance.
    with torch.no_grad():
        model.norm3.weight.fill_(1.)
        model.norm3.bias.zero_()
        out = model(torch.randn(1, 3, 64, 64))[1]
    torch.testing.assert_close(out.mean(1), torch.zeros_like(out.mean(1)), atol=1e-5, rtol=0)


def test_frozen_stages_0_is_the_first_patch_merging():
    # frozen_stages >= 1 is in test_contract.py.
    model = tiny(frozen_stages=0)
    model.train()
    assert not any(p.requires_grad for p in model.stages[0].patch_merging.parameters())
    assert all(p.requires_grad for p in model.stages[0].blocks.parameters())


def test_norm_eval():
    model = tiny(norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == sum(TINY['depths'])  # one norm over the fused Q/K/V channels per block
    assert all(not bn.training for bn in bns)
    assert model.stages[0].blocks[0].norm1.training  # LayerNorms are unaffected
    before = bns[0].running_mean.clone()
    model(torch.randn(1, 3, 32, 32))
    assert torch.equal(bns[0].running_mean, before)


def test_with_cp_checkpoints_blocks_after_a_frozen_stem(monkeypatch):
    # frozen_stages=0 freezes the first patch merging: its output needs no grad, the blocks after it do.
    import torch.utils.checkpoint as cp
    calls = []
    original = cp.checkpoint
    monkeypatch.setattr(cp, 'checkpoint', lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    model = tiny(with_cp=True, frozen_stages=0).train()
    sum(o.mean() for o in model(torch.randn(1, 3, 40, 50))).backward()
    assert len(calls) == sum(TINY['depths'])
    assert model.stages[0].blocks[0].mlp.fc1.weight.grad is not None


def test_drop_path_rates():
    model = tiny(drop_path_rate=0.3)
    blocks = [b for s in model.stages for b in s.blocks]
    assert isinstance(blocks[0].drop_path, nn.Identity)
    # linspace(0, 0.3, 5) over the 5 blocks of TINY.
    assert [b.drop_path.drop_prob for b in blocks[1:]] == pytest.approx([0.075, 0.15, 0.225, 0.3])
