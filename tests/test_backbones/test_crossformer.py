"""CrossFormer / CrossFormer++ backbone tests.

The reference cannot run here, so ``reference_features`` below is an
independent, literal transcription of the reference forward pass as the spec
(``docs/crossformer.md``) describes it: explicit reshape/permute
orders, the -1 pixel mask grouped like the tokens, the Swin-style relative
position index, softmax written out. The backbone must match it to 1e-5.
"""
import pytest
import torch
import torch.nn.functional as F

from mmvit_backbones.models.backbones import CrossFormer, CrossFormerPP
from mmvit_backbones.models.backbones.crossformer import (
    CLASSIFICATION_GEOMETRY,
    LongShortDistanceAttention,
    lsda_layout,
)
from mmvit_backbones.models.layers import grid_partition, grid_reverse

# A narrow custom arch keeps the forward passes cheap; semantics do not depend on width.
TINY = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))
NARROW = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 4))
TINY_ACL = dict(embed_dims=32, depths=(2, 2, 6, 2), num_heads=(1, 2, 4, 8), use_acl=True)
MICRO = dict(embed_dims=16, depths=(1, 2, 1, 2), num_heads=(1, 1, 2, 4))


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights large enough that biases, masks and norms all matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            for name, param in module.named_parameters(recurse=False):
                noise = torch.randn(param.shape, generator=gen)
                if isinstance(module, torch.nn.LayerNorm) and name == 'weight':
                    param.copy_(1 + 0.2 * noise)
                elif param.dim() > 1:
                    param.copy_(noise / param[0].numel()**0.5)
                else:
                    param.copy_(0.2 * noise)
    return model.eval()


# ----------------------------------------------------------------------------
# Independent transcription of the reference forward pass (spec §4 and §6).
# ----------------------------------------------------------------------------
def _ref_dpb(pos, biases):
    """DPB MLP written out: Linear, then three [LayerNorm, ReLU, Linear]."""
    x = F.linear(biases, pos.pos_proj.weight, pos.pos_proj.bias)
    for seq in (pos.pos1, pos.pos2, pos.pos3):
        x = F.layer_norm(x, (x.shape[-1], ), seq[0].weight, seq[0].bias, 1e-5)
        x = F.linear(torch.relu(x), seq[2].weight, seq[2].bias)
    return x


def _ref_block(block, x, H, W, G, S, lsda_flag, version):
    """One reference block on (B, H·W, C) tokens. ``lsda_flag`` 0=SDA, 1=LDA;
    ``S`` is the spec's interval I."""
    B, L, C = x.shape
    attn_mod = block.attn
    nH = attn_mod.num_heads
    if min(H, W) <= G:  # det backbone rule: global SDA with G = max(H, W), padded and masked
        lsda_flag, G = 0, max(H, W)
    shortcut = x
    x = F.layer_norm(x, (C, ), block.norm1.weight, block.norm1.bias, 1e-5).view(B, H, W, C)
    if lsda_flag == 0:
        size_div = G
    else:
        size_div = S * G if version == 2 else S
    pad_b = (size_div - H % size_div) % size_div
    pad_r = (size_div - W % size_div) % size_div
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    Hp, Wp = H + pad_b, W + pad_r
    mask = torch.zeros(1, Hp, Wp, 1)
    mask[:, H:, :, :] = -1
    mask[:, :, W:, :] = -1

    if lsda_flag == 0:
        Gh = Gw = G
        x = x.reshape(B, Hp // G, G, Wp // G, G, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, G * G, C)
        m = mask.reshape(1, Hp // G, G, Wp // G, G, 1).permute(0, 1, 3, 2, 4, 5).reshape(-1, G * G)
    elif version == 2:
        Gh = Gw = G
        Rh, Rw = Hp // (G * S), Wp // (G * S)
        x = x.reshape(B, Rh, G, S, Rw, G, S, C).permute(0, 1, 4, 3, 6, 2, 5, 7).reshape(-1, G * G, C)
        m = mask.reshape(1, Rh, G, S, Rw, G, S, 1).permute(0, 1, 4, 3, 6, 2, 5, 7).reshape(-1, G * G)
    else:
        Gh, Gw = Hp // S, Wp // S
        x = x.reshape(B, Gh, S, Gw, S, C).permute(0, 2, 4, 1, 3, 5).reshape(B * S * S, Gh * Gw, C)
        m = mask.reshape(1, Gh, S, Gw, S, 1).permute(0, 2, 4, 1, 3, 5).reshape(S * S, Gh * Gw)
    N = Gh * Gw
    nG = m.shape[0]
    attn_mask = None
    if pad_b or pad_r:  # -1e6 on padded *keys*, for every query
        attn_mask = torch.zeros(nG, N, N).masked_fill(m[:, None, :] < 0, -1e6)

    B_ = x.shape[0]
    qkv = F.linear(x, attn_mod.qkv.weight, attn_mod.qkv.bias).reshape(B_, N, 3, nH, C // nH).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    q = q * (C // nH)**-0.5
    attn = q @ k.transpose(-2, -1)
    # Relative offsets table (Δh major) and the Swin relative position index.
    biases = torch.stack(torch.meshgrid(torch.arange(1 - Gh, Gh), torch.arange(1 - Gw, Gw), indexing='ij'))
    biases = biases.flatten(1).transpose(0, 1).float()
    coords = torch.stack(torch.meshgrid(torch.arange(Gh), torch.arange(Gw), indexing='ij')).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += Gh - 1
    rel[:, :, 1] += Gw - 1
    rel[:, :, 0] *= 2 * Gw - 1
    index = rel.sum(-1)
    pos = _ref_dpb(attn_mod.pos, biases)
    attn = attn + pos[index.view(-1)].view(N, N, -1).permute(2, 0, 1).unsqueeze(0)
    if attn_mask is not None:
        attn = (attn.view(B_ // nG, nG, nH, N, N) + attn_mask.unsqueeze(1).unsqueeze(0)).view(-1, nH, N, N)
    attn = attn.softmax(dim=-1)
    x = (attn @ v).transpose(1, 2).reshape(B_, N, C)
    x = F.linear(x, attn_mod.proj.weight, attn_mod.proj.bias)

    if lsda_flag == 0:
        x = x.reshape(B, Hp // G, Wp // G, G, G, C).permute(0, 1, 3, 2, 4, 5)
    elif version == 2:
        x = x.reshape(B, Rh, Rw, S, S, G, G, C).permute(0, 1, 5, 3, 2, 6, 4, 7)
    else:
        x = x.reshape(B, S, S, Gh, Gw, C).permute(0, 3, 1, 4, 2, 5)
    x = x.reshape(B, Hp, Wp, C)[:, :H, :W].reshape(B, H * W, C)
    x = shortcut + x
    y = F.layer_norm(x, (C, ), block.norm2.weight, block.norm2.bias, 1e-5)
    y = F.linear(F.gelu(F.linear(y, block.mlp.fc1.weight, block.mlp.fc1.bias)), block.mlp.fc2.weight,
                 block.mlp.fc2.bias)
    x = x + y
    if block.ex_conv is not None:  # ACL: no residual
        y = x.view(B, H, W, C).permute(0, 3, 1, 2)
        y = F.conv2d(y, block.ex_conv.weight, block.ex_conv.bias, padding=1, groups=C)
        x = F.layer_norm(y.flatten(2).transpose(1, 2), (C, ), block.ex_ln.weight, block.ex_ln.bias, 1e-5)
    return x


def reference_features(model, img, version):
    """Reference stage features (before each downsampling), NCHW."""
    pe = model.patch_embed
    feats = []
    for k, proj in zip((4, 8, 16, 32), pe.projs):
        feats.append(F.conv2d(img, proj.weight, proj.bias, stride=4, padding=(k - 4) // 2).flatten(2).transpose(1, 2))
    x = torch.cat(feats, dim=2)  # small kernel first
    x = F.layer_norm(x, (x.shape[-1], ), pe.norm.weight, pe.norm.bias, 1e-5)
    H, W = img.shape[2] // 4, img.shape[3] // 4
    outs = []
    for s, stage in enumerate(model.layers):
        for i, block in enumerate(stage.blocks):
            x = _ref_block(block, x, H, W, model.group_size[s], model.interval[s], i % 2, version)
        B, L, C = x.shape
        outs.append(x.view(B, H, W, C).permute(0, 3, 1, 2))
        if stage.downsample is not None:
            ds = stage.downsample
            y = F.layer_norm(x, (C, ), ds.norm.weight, ds.norm.bias, 1e-5).view(B, H, W, C).permute(0, 3, 1, 2)
            y = torch.cat([
                F.conv2d(y, ds.reductions[0].weight, ds.reductions[0].bias, stride=2, padding=0).flatten(2),
                F.conv2d(y, ds.reductions[1].weight, ds.reductions[1].bias, stride=2, padding=1).flatten(2)
            ], dim=1)  # no norm after
            x = y.transpose(1, 2)
            H, W = H // 2, W // 2
    return outs


def assert_features_close(ours, ref, atol=1e-5):
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=atol, rtol=1e-5)


# ----------------------------------------------------------------------------
# Numerics against the transcription
# ----------------------------------------------------------------------------
def test_matches_reference_classification_geometry_224():
    """CrossFormer++ ImageNet geometry at 224: padded LDA with masks in stages 1-2,
    global stage 3 (G=14 on 14x14), ACL."""
    geometry = CLASSIFICATION_GEOMETRY['CrossFormerPP']
    model = randomize_(CrossFormerPP(arch=TINY_ACL, **geometry))
    img = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert_features_close(model(img), reference_features(model, img, version=2))


def test_crossformer_t_layout_matches_reference_224():
    """CrossFormer-T's depths (single SDA blocks in stages 1-2, odd depth in
    stage 4) in the dense / CrossFormer ImageNet geometry G=7, I=(8, 4, 2, 1)."""
    model = randomize_(CrossFormer(arch=dict(embed_dims=32, depths=(1, 1, 4, 3), num_heads=(1, 2, 4, 8))), seed=1)
    img = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert_features_close(model(img), reference_features(model, img, version=2))


@pytest.mark.parametrize('lda_version', [1, 2])
def test_matches_reference_800x1216(lda_version):
    model = randomize_(CrossFormer(arch=NARROW, lda_version=lda_version), seed=2)
    img = torch.randn(1, 3, 800, 1216)
    with torch.no_grad():
        assert_features_close(model(img), reference_features(model, img, version=lda_version))


@pytest.mark.parametrize('lda_version', [1, 2])
@pytest.mark.parametrize('size', [(96, 160), (100, 76), (40, 232)])
def test_matches_reference_odd_layouts(lda_version, size):
    """Padding, masks and the small-map rule (a side <= G, non-square) at sizes
    that are multiples of 32, where the reference runs too."""
    model = randomize_(CrossFormer(arch=TINY, lda_version=lda_version), seed=3)
    img = torch.randn(2, 3, *size)
    with torch.no_grad():
        assert_features_close(model(img), reference_features(model, img, version=lda_version))


def test_v1_equals_v2_at_224_and_differs_elsewhere():
    """Spec: both LDA generations are the same grouping when H = G·I."""
    v2 = randomize_(CrossFormer(arch=TINY, lda_version=2), seed=4)
    v1 = CrossFormer(arch=TINY, lda_version=1).eval()
    v1.load_state_dict(v2.state_dict())
    with torch.no_grad():
        img = torch.randn(1, 3, 224, 224)
        for a, b in zip(v1(img), v2(img)):
            assert torch.equal(a, b)
        img = torch.randn(1, 3, 256, 320)
        assert not torch.allclose(v1(img)[0], v2(img)[0])


# ----------------------------------------------------------------------------
# Hand-checkable semantics
# ----------------------------------------------------------------------------
@pytest.mark.parametrize('size, group_size, interval, long_distance, version, expected', [
    # SDA: windows of G, padded to multiples of G.
    ((56, 56), 7, 8, False, 2, ((7, 7), (1, 1), (56, 56))),
    ((25, 38), 7, 1, False, 1, ((7, 7), (1, 1), (28, 42))),
    # LDA v2: G x G spaced I apart, padded to G·I (CrossFormer++ stage 1 at 224: 56 -> 64).
    ((56, 56), 4, 4, True, 2, ((4, 4), (4, 4), (64, 64))),
    ((200, 304), 7, 8, True, 2, ((7, 7), (8, 8), (224, 336))),
    # LDA v1 at 800x1216: I² groups of ceil(H/I) x ceil(W/I) in every stage.
    ((200, 304), 7, 8, True, 1, ((25, 38), (8, 8), (200, 304))),
    ((100, 152), 7, 4, True, 1, ((25, 38), (4, 4), (100, 152))),
    ((50, 76), 7, 2, True, 1, ((25, 38), (2, 2), (50, 76))),
    ((25, 38), 7, 1, True, 1, ((25, 38), (1, 1), (25, 38))),  # I=1: global
    ((201, 305), 7, 8, True, 1, ((26, 39), (8, 8), (208, 312))),
    # A side <= G: one global group, whatever the block kind.
    ((7, 7), 7, 1, True, 2, ((7, 7), (1, 1), (7, 7))),
    ((14, 14), 14, 1, False, 2, ((14, 14), (1, 1), (14, 14))),
    ((5, 9), 7, 2, True, 1, ((5, 9), (1, 1), (5, 9))),
])
def test_group_layout(size, group_size, interval, long_distance, version, expected):
    layout = lsda_layout(size, group_size, interval, long_distance, version)
    assert (layout.group, layout.interval, layout.padded_size) == expected
    assert (layout.key_bias is None) == (layout.padded_size == size)


def test_v1_grouping_members_at_800x1216_stage1():
    """v1 LDA (I=8 on 200x304): 64 groups of 25x38; token (gh, gw) of group
    (ih, iw) is pixel (gh·I + ih, gw·I + iw), groups ordered (ih, iw)."""
    layout = lsda_layout((200, 304), 7, 8, True, 1)
    rows, cols = torch.meshgrid(torch.arange(200), torch.arange(304), indexing='ij')
    coords = torch.stack([rows, cols], dim=-1)[None]  # (1, H, W, 2)
    groups = grid_partition(coords, layout.group, layout.interval)
    assert groups.shape == (64, 25 * 38, 2)
    for ih, iw, gh, gw in [(0, 0, 0, 0), (0, 1, 0, 0), (3, 5, 2, 7), (7, 7, 24, 37)]:
        assert groups[ih * 8 + iw, gh * 38 + gw].tolist() == [gh * 8 + ih, gw * 8 + iw]
    assert torch.equal(grid_reverse(groups, (200, 304), layout.group, layout.interval), coords)


def test_v2_grouping_members_small():
    """v2 LDA with G=2, I=2 on a 4x4 map: group (ih, iw) holds the pixels
    (2·gh + ih, 2·gw + iw)."""
    layout = lsda_layout((4, 4), 2, 2, True, 2)
    assert (layout.group, layout.interval, layout.padded_size) == ((2, 2), (2, 2), (4, 4))
    x = torch.arange(16).view(1, 4, 4, 1)
    groups = grid_partition(x, layout.group, layout.interval)
    assert groups[..., 0].tolist() == [[0, 2, 8, 10], [1, 3, 9, 11], [4, 6, 12, 14], [5, 7, 13, 15]]


@pytest.mark.parametrize('dim, hidden', [(64, 4), (96, 6), (128, 8), (192, 12), (256, 16), (384, 24), (512, 32),
                                         (768, 48), (1024, 64)])
def test_dpb_hidden_width_is_c_over_16(dim, hidden):
    heads = dim // 32
    pos = LongShortDistanceAttention(dim, heads, 7, 8, long_distance=True, lda_version=2).pos
    assert pos.pos_proj.weight.shape == (hidden, 2)
    for seq in (pos.pos1, pos.pos2, pos.pos3):
        assert isinstance(seq[0], torch.nn.LayerNorm) and isinstance(seq[1], torch.nn.ReLU)
    assert pos.pos3[2].weight.shape == (heads, hidden)


def test_dpb_bias_is_the_mlp_of_raw_offsets():
    """G = 2 (tokens (0,0), (0,1), (1,0), (1,1)): bias[:, i, j] = MLP(p_i − p_j)."""
    pos = randomize_(CrossFormer(arch=TINY)).layers[0].blocks[0].attn.pos
    points = [(0, 0), (0, 1), (1, 0), (1, 1)]
    with torch.no_grad():
        bias = pos.bias_for_group((2, 2), torch.device('cpu'))
        assert bias.shape == (1, 4, 4)
        for i, (hi, wi) in enumerate(points):
            for j, (hj, wj) in enumerate(points):
                expected = _ref_dpb(pos, torch.tensor([[float(hi - hj), float(wi - wj)]]))[0]
                torch.testing.assert_close(bias[:, i, j], expected)
        # Non-square groups (v1 LDA): offsets span each axis on its own.
        bias = pos.bias_for_group((2, 3), torch.device('cpu'))
        torch.testing.assert_close(bias[:, 5, 0], _ref_dpb(pos, torch.tensor([[1., 2.]]))[0])  # (1,2) - (0,0)


def test_padded_keys_get_minus_1e6_and_queries_are_not_masked(monkeypatch):
    """SDA with G=4 on a 5x5 map: padded to 8x8, 4 windows. With the DPB zeroed
    the bias passed to attention is the key mask alone."""
    from mmvit_backbones.models.backbones import crossformer
    attn = LongShortDistanceAttention(32, 1, group_size=4, interval=1, long_distance=False, lda_version=2)
    with torch.no_grad():
        attn.pos.pos3[2].weight.zero_()
        attn.pos.pos3[2].bias.zero_()
    captured, original = {}, crossformer.attention

    def spy(q, k, v, bias=None, scale=None):
        captured['bias'], captured['scale'] = bias, scale
        return original(q, k, v, bias=bias, scale=scale)

    monkeypatch.setattr(crossformer, 'attention', spy)
    with torch.no_grad():
        attn(torch.randn(1, 5, 5, 32))
    bias = captured['bias'].view(4, 16, 16)  # (windows · heads, N, N), 1 head
    expected = torch.zeros(4, 16, 16)
    for window, (r0, c0) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
        for key in range(16):
            row, col = r0 + key // 4, c0 + key % 4
            if row >= 5 or col >= 5:
                expected[window, :, key] = -1e6  # every query row: queries are not masked
    assert torch.equal(bias, expected)
    assert captured['scale'] == 32**-0.5  # q·k scaled by head_dim^-0.5


def test_padding_is_bottom_right():
    """SDA G=4 on 5x5: the top-left window holds rows/cols 0-3 unpadded, so its
    outputs equal attention over exactly that 4x4 crop (one group)."""
    attn = randomize_(LongShortDistanceAttention(32, 2, group_size=4, interval=1, long_distance=False, lda_version=2))
    x = torch.randn(1, 5, 5, 32)
    with torch.no_grad():
        torch.testing.assert_close(attn(x)[:, :4, :4], attn(x[:, :4, :4]))


def test_small_map_attends_globally_and_large_map_locally():
    attn = randomize_(CrossFormer(arch=TINY)).layers[0].blocks[1].attn  # LDA, G=7, I=8
    x = torch.randn(1, 5, 9, 32, requires_grad=True)  # min side 5 <= 7: one group
    attn(x)[0, 0, 0].sum().backward()
    assert (x.grad[0].abs().sum(-1) > 0).all()
    sda = randomize_(CrossFormer(arch=TINY)).layers[0].blocks[0].attn  # SDA, G=7
    x = torch.randn(1, 9, 9, 32, requires_grad=True)
    sda(x)[0, 0, 0].sum().backward()
    touched = x.grad[0].abs().sum(-1) > 0
    assert touched[:7, :7].all() and not touched[7:].any() and not touched[:, 7:].any()


def test_acl_has_no_residual():
    block = randomize_(CrossFormerPP(arch=TINY_ACL)).layers[2].blocks[2]
    assert block.ex_conv is not None
    with torch.no_grad():
        block.ex_conv.weight.zero_()
        block.ex_conv.bias.zero_()
        out = block(torch.randn(2, 6, 5, 128))
    # ex_ln(0) is its bias at every token: nothing of the input survives.
    torch.testing.assert_close(out, block.ex_ln.bias.expand_as(out))


@pytest.mark.parametrize('cls, arch, expected', [
    (CrossFormerPP, 's', {2: [2, 5, 8, 11, 14]}),
    (CrossFormerPP, 'h', {0: [2], 1: [2], 2: [2, 5, 8, 11, 14]}),
    (CrossFormer, 'b', {}),
])
def test_acl_placement(cls, arch, expected):
    with torch.device('meta'):
        model = cls(arch=arch)
    found = {s: [i for i, b in enumerate(stage.blocks) if b.ex_conv is not None]
             for s, stage in enumerate(model.layers)}
    assert {s: v for s, v in found.items() if v} == expected


def test_cross_scale_embedding_layers():
    model = CrossFormer(arch='s')
    convs = model.patch_embed.projs
    assert [c.out_channels for c in convs] == [48, 24, 12, 12]
    assert [c.kernel_size[0] for c in convs] == [4, 8, 16, 32]
    assert [c.padding[0] for c in convs] == [0, 2, 6, 14]
    assert all(c.stride == (4, 4) for c in convs)
    with torch.device('meta'):
        assert [c.out_channels for c in CrossFormerPP(arch='s').patch_embed.projs] == [32, 16, 8, 8]
    reductions = model.layers[1].downsample.reductions
    assert [(r.out_channels, r.kernel_size[0], r.stride[0], r.padding[0]) for r in reductions] == [(192, 2, 2, 0),
                                                                                               (192, 4, 2, 1)]
    assert model.layers[3].downsample is None


def test_drop_path_rates_follow_linspace():
    model = CrossFormer(arch='t')  # 16 blocks, rate 0.1
    blocks = [b for stage in model.layers for b in stage.blocks]
    assert isinstance(blocks[0].drop_path, torch.nn.Identity)
    assert blocks[-1].drop_path.drop_prob == pytest.approx(0.1)
    assert blocks[5].drop_path.drop_prob == pytest.approx(0.1 * 5 / 15)
    model = CrossFormer(arch='t', drop_path_rate=0.)
    assert all(isinstance(b.drop_path, torch.nn.Identity) for stage in model.layers for b in stage.blocks)


def test_module_configuration_is_not_changed_by_forward():
    """The reference backbone rewrites G after a small input; this one must not."""
    model = randomize_(CrossFormer(arch=TINY, lda_version=1), seed=6)
    big = torch.randn(1, 3, 256, 320)
    with torch.no_grad():
        before = model(big)
        model(torch.randn(1, 3, 64, 96))  # stages 3-4 are at most 4x6 here: small-map rule
        after = model(big)
    for a, b in zip(before, after):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------
# Parameter counts (spec §3.2)
# ----------------------------------------------------------------------------
@pytest.mark.parametrize('cls, arch, total, backbone_dense', [
    (CrossFormer, 't', 27_776_794, None),
    (CrossFormer, 's', 30_657_394, 29_886_858),
    (CrossFormer, 'b', 51_971_554, None),
    (CrossFormer, 'l', 91_971_184, None),
    (CrossFormerPP, 's', 23_325_340, 22_811_316),
    (CrossFormerPP, 'b', 51_994_594, None),
    (CrossFormerPP, 'l', 92_001_904, None),
    (CrossFormerPP, 'h', 95_962_944, None),
])
def test_parameter_counts(cls, arch, total, backbone_dense):
    with torch.device('meta'):
        classifier_body = cls(arch=arch, out_indices=(3, ), final_norm=True)
        dense = cls(arch=arch)
    width = classifier_body.embed_dims * 8
    head = width * 1000 + 1000
    body = sum(p.numel() for p in classifier_body.parameters())
    assert body + head == total  # with the 1000-class head
    dense_count = sum(p.numel() for p in dense.parameters())
    assert dense_count == body - 2 * width  # the dense backbone has no final norm
    if backbone_dense is not None:
        assert dense_count == backbone_dense


# ----------------------------------------------------------------------------
# Input sizes, outputs and options
# ----------------------------------------------------------------------------
@pytest.mark.parametrize('lda_version', [1, 2])
# The sizes of the backbone contract (lda_version 2) are in test_contract.py.
@pytest.mark.parametrize('size', [(33, 47), (112, 137), (224, 224), (35, 250)])
def test_any_input_size(size, lda_version):
    model = CrossFormer(arch=MICRO, lda_version=lda_version).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    h, w = size
    for i, out in enumerate(outs):
        assert out.shape == (1, 16 * 2**i, h // 2**(i + 2), w // 2**(i + 2))
        assert torch.isfinite(out).all()


@pytest.mark.parametrize('size', [(40, 2048), (1024, 1024)])
def test_large_and_extreme_aspect_inputs(size):
    model = CrossFormer(arch=MICRO).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    assert outs[3].shape == (1, 128, size[0] // 32, size[1] // 32)
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='t', lda_version=3), 'lda_version'),
    (dict(group_size=(7, 7, 7)), 'group_size'),
    (dict(interval=(8, 4, 2, 0)), 'interval'),
    (dict(arch=dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(3, 2, 4, 8))), 'divisible'),
    (dict(arch=dict(embed_dims=32, depths=(2, 2, 2, 2))), 'num_heads'),
    (dict(final_norm=True, out_indices=(0, 1)), 'final_norm'),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CrossFormer(**kwargs)


def test_crossformerpp_arch_names():
    with pytest.raises(ValueError, match="choose one of \\['b', 'h', 'l', 's'\\]"):
        CrossFormerPP(arch='t')


def test_out_norms_only_on_the_outputs():
    model = CrossFormer(arch=MICRO, out_indices=(0, ), out_norms=True)
    assert hasattr(model, 'norm0') and not hasattr(model, 'norm1')
    assert model(torch.randn(1, 3, 64, 64))[0].shape == (1, 16, 16, 16)


def test_init_weights_from_scratch():
    model = CrossFormer(arch=MICRO)
    model.init_weights()
    qkv = model.layers[0].blocks[0].attn.qkv
    assert torch.all(qkv.bias == 0) and qkv.weight.std() < 0.05
    assert torch.all(model.layers[0].blocks[0].norm1.weight == 1)


def test_registered_in_root_registry():
    from mmengine.registry import MODELS
    model = MODELS.build(dict(type='CrossFormerPP', arch='s', group_size=(4, 4, 14, 7), interval=(4, 2, 1, 1)))
    assert isinstance(model, CrossFormerPP) and model.use_acl


def test_with_cp_and_frozen_stages_under_ddp(tmp_path):
    """Non-reentrant checkpointing inside DistributedDataParallel (one CPU
    process, gloo): same gradients as the plain module, frozen stages untouched."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    plain = randomize_(CrossFormer(arch=MICRO, frozen_stages=1), seed=8).train()
    checkpointed = CrossFormer(arch=MICRO, frozen_stages=1, with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    img = torch.randn(1, 3, 64, 64)
    sum(o.mean() for o in plain(img)).backward()
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    try:
        ddp = DistributedDataParallel(checkpointed)
        sum(o.mean() for o in ddp(img)).backward()
    finally:
        dist.destroy_process_group()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        if name.startswith(('patch_embed', 'layers.0')):
            assert a.grad is None and b.grad is None, name
        else:
            torch.testing.assert_close(a.grad, b.grad, msg=name)
