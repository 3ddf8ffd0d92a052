"""The backbone contract of :class:`MultiScaleBackbone`, checked on all four types.

Shapes and strides at odd and extreme sizes, ``out_indices``, ``frozen_stages``,
``with_cp``, bf16 autocast, fused vs plain attention, ``torch.compile``, the
``init_cfg`` rule, ``feature_info``, and the robustness cases (bad inputs and
arguments, empty batches, dtypes). Each family's own maths is tested in its own
file. The archs are tiny but keep every block kind: CrossFormer SDA + LDA,
CrossFormer++ ACL (after the third block of a stage), Pale row + column
branches, SG-Former hybrid-scale + self-guided + global.
"""
import math

import pytest
import torch
import torch.utils.checkpoint as cp
from torch import nn

from mmvit_backbones.models.backbones import CrossFormer, CrossFormerPP, PaleTransformer, SGFormer
from mmvit_backbones.models.layers import fused_attention

TINY = {
    'crossformer': (CrossFormer, dict(arch=dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8]))),
    'crossformerpp': (CrossFormerPP, dict(arch=dict(embed_dims=16, depths=[1, 1, 4, 1], num_heads=[1, 2, 4, 8]))),
    'pale': (PaleTransformer, dict(arch=dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                             num_heads=[2, 2, 4, 4]))),
    'sgformer': (SGFormer, dict(arch=dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 1], num_heads=[2, 2, 4, 8]))),
}
NAMES = sorted(TINY)
CHANNELS = [16, 32, 64, 128]
STRIDES = [4, 8, 16, 32]
# Padded convolutions (Pale, SG-Former) round odd sizes up, CrossFormer's unpadded ones down.
ROUNDING = {'crossformer': math.floor, 'crossformerpp': math.floor, 'pale': math.ceil, 'sgformer': math.ceil}
# What frozen_stages=1 freezes: the stem and stage 0 with its output norm.
FROZEN_AT_1 = {
    'crossformer': ('patch_embed.', 'layers.0.'),
    'crossformerpp': ('patch_embed.', 'layers.0.'),
    'pale': ('stages.0.', 'norm0.'),
    'sgformer': ('pos_embed', 'patch_embed1.', 'block1.', 'norm1.'),
}


def build(name, seed=0, **kwargs):
    cls, defaults = TINY[name]
    torch.manual_seed(seed)
    model = cls(**{'drop_path_rate': 0., **defaults, **kwargs})
    model.init_weights()
    return model


def expected_shapes(name, batch, size, indices=range(4)):
    rounding = ROUNDING[name]
    return [(batch, CHANNELS[i], rounding(size[0] / STRIDES[i]), rounding(size[1] / STRIDES[i])) for i in indices]


def loss_of(outs):
    return sum(o.float().square().mean() for o in outs)


# -- shapes, strides, out_indices, feature_info ------------------------------------
@pytest.mark.parametrize('size', [(32, 32), (33, 47), (511, 513), (2048, 40)])
@pytest.mark.parametrize('name', NAMES)
def test_shapes_and_strides(name, size):
    model = build(name).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    assert [tuple(o.shape) for o in outs] == expected_shapes(name, 1, size)
    assert all(o.dtype == torch.float32 and torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('name', NAMES)
def test_out_indices_select_stages_and_feature_info_describes_them(name):
    model = build(name, out_indices=(1, -1)).eval()
    assert model.out_indices == [1, 3]
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == expected_shapes(name, 2, (64, 96), (1, 3))
    assert model.feature_info == [dict(num_chs=32, reduction=8, stage=1), dict(num_chs=128, reduction=32, stage=3)]
    # The metadata agrees with real outputs at a size all strides divide.
    with torch.no_grad():
        outs = build(name).eval()(torch.randn(1, 3, 128, 256))
    info = build(name).feature_info
    assert [f['num_chs'] for f in info] == [o.shape[1] for o in outs]
    assert [f['reduction'] for f in info] == [128 // o.shape[2] for o in outs] == [256 // o.shape[3] for o in outs]


# -- frozen stages, checkpointing ---------------------------------------------------------
@pytest.mark.parametrize('name', NAMES)
def test_frozen_stages_eval_no_grads_kept_through_train(name):
    model = build(name, frozen_stages=1)
    model.train()
    frozen = FROZEN_AT_1[name]
    for param_name, param in model.named_parameters():
        assert param.requires_grad != param_name.startswith(frozen), param_name
    for module_name, module in model.named_modules():
        if (module_name + '.').startswith(frozen):
            assert not module.training, module_name
    loss_of(model(torch.randn(2, 3, 64, 64))).backward()
    for param_name, param in model.named_parameters():
        assert (param.grad is None) == param_name.startswith(frozen), param_name
    model.train()  # again: still frozen
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith(frozen))


@pytest.mark.parametrize('with_cp', [True, 'selective'])
@pytest.mark.parametrize('name', NAMES)
def test_with_cp_equals_plain_in_forward_and_gradients(name, with_cp, monkeypatch):
    calls = []
    original = cp.checkpoint
    monkeypatch.setattr(cp, 'checkpoint', lambda *a, **k: calls.append(k.get('use_reentrant')) or original(*a, **k))
    x = torch.randn(2, 3, 45, 61)
    results = []
    for mode in (False, with_cp):
        model = build(name, with_cp=mode).eval()  # eval: BatchNorm statistics do not move
        image = x.clone().requires_grad_()
        outs = model(image)
        loss_of(outs).backward()
        results.append(([o.detach() for o in outs], image.grad, [p.grad for p in model.parameters()]))
    assert calls and set(calls) == {False}
    (outs_a, gx_a, grads_a), (outs_b, gx_b, grads_b) = results
    for a, b in zip(outs_a, outs_b):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(gx_a, gx_b)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b)


# -- precision and attention paths ----------------------------------------------------------------
@pytest.mark.parametrize('name', NAMES)
def test_bf16_autocast_gives_one_output_dtype_and_finite_gradients(name):
    model = build(name).train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(torch.randn(2, 3, 45, 70))  # padded windows and groups: masks in bf16
    assert [o.dtype for o in outs] == [torch.bfloat16] * 4
    assert [tuple(o.shape) for o in outs] == expected_shapes(name, 2, (45, 70))
    assert all(torch.isfinite(o.float()).all() for o in outs)
    loss_of(outs).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize('name', NAMES)
def test_fused_and_plain_attention_agree_in_forward_and_gradients(name):
    model = build(name).eval()
    x = torch.randn(2, 3, 57, 45)  # padding in every family
    results = []
    for fused in (True, False):
        model.zero_grad()
        with fused_attention(fused):
            outs = model(x)
        loss_of(outs).backward()
        results.append(([o.detach() for o in outs], {n: p.grad.clone() for n, p in model.named_parameters()}))
    for a, b in zip(results[0][0], results[1][0]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    for param_name, grad in results[1][1].items():
        torch.testing.assert_close(results[0][1][param_name], grad, rtol=1e-4, atol=1e-4, msg=param_name)


@pytest.mark.parametrize('name', NAMES)
def test_fullgraph_compile_matches_eager(name):
    # The eager backend runs the captured graph with ordinary ops: this checks the tracing (no graph
    # break) without paying for code generation on CPU; outputs and gradients must equal eager mode.
    model = build(name)
    x = torch.randn(2, 3, 45, 61)  # odd, non-square: padding and masking are traced too
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend='eager', dynamic=False)

    model.train()  # no stochastic depth: train mode is deterministic
    expected = model(x)
    grads = torch.autograd.grad(loss_of(expected), list(model.parameters()))
    got = compiled(x)
    compiled_grads = torch.autograd.grad(loss_of(got), list(model.parameters()))
    for out, ref in zip(got, expected):
        torch.testing.assert_close(out, ref)
    for grad, ref in zip(compiled_grads, grads):
        torch.testing.assert_close(grad, ref)

    model.eval()
    with torch.no_grad():
        for out, ref in zip(compiled(x), model(x)):
            torch.testing.assert_close(out, ref)


# -- the init_cfg rule -----------------------------------------------------------------
@pytest.mark.parametrize('name', NAMES)
def test_init_cfg_rule(name, tmp_path, monkeypatch):
    cls, defaults = TINY[name]
    source = build(name, seed=3)
    calls = []
    original = cls.init_weights_from_scratch
    monkeypatch.setattr(cls, 'init_weights_from_scratch', lambda self: calls.append(1) or original(self))

    # No init_cfg: the family's own initialisation (zero Linear biases among others).
    model = cls(**defaults)
    model.init_weights()
    assert calls == [1]
    assert all(torch.all(m.bias == 0) for m in model.modules() if isinstance(m, nn.Linear))

    # Any other init_cfg: mmengine's initialisers alone.
    model = cls(**defaults, init_cfg=dict(type='Constant', layer='Linear', val=0.5, bias=0.25))
    model.init_weights()
    assert calls == [1]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears and all(torch.all(m.weight == 0.5) and torch.all(m.bias == 0.25) for m in linears)

    # Pretrained: a whole detector's checkpoint (``backbone.*``) loads, the family init does not run.
    path = tmp_path / 'detector.pth'
    torch.save({'state_dict': {**{f'backbone.{k}': v for k, v in source.state_dict().items()},
                               'neck.conv.weight': torch.zeros(1)}}, path)
    model = cls(**defaults, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert calls == [1]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, source.state_dict()[key], msg=key)


# -- robustness: inputs ----------------------------------------------------------------
@pytest.mark.parametrize('name', NAMES)
def test_bad_inputs_raise_the_documented_errors(name):
    model = build(name).eval()
    with pytest.raises(ValueError, match='4-D'):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match='3 input channels'):
        model(torch.randn(1, 4, 64, 64))
    with pytest.raises(TypeError, match='torch.Tensor'):
        model([torch.randn(1, 3, 64, 64)])


@pytest.mark.parametrize('dtype', [torch.uint8, torch.int64, torch.bool])
@pytest.mark.parametrize('name', NAMES)
def test_integer_and_bool_images_raise_type_error(name, dtype):
    with pytest.raises(TypeError, match='floating-point image'):
        build(name)(torch.zeros(1, 3, 64, 64, dtype=dtype))


@pytest.mark.parametrize('dtype', [torch.float16, torch.float64])
@pytest.mark.parametrize('name', NAMES)
def test_float_input_must_match_the_parameter_dtype(name, dtype):
    model = build(name).eval()
    with pytest.raises(TypeError, match=f'torch.float32 parameters and got a {dtype} input'):
        model(torch.zeros(1, 3, 64, 64, dtype=dtype))
    if dtype == torch.float64:  # a model cast to the input's dtype accepts it
        with torch.no_grad():
            expected = model(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
            outs = model.double()(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)).double())
        assert all(o.dtype == torch.float64 for o in outs)
        for out, ref in zip(outs, expected):
            torch.testing.assert_close(out.float(), ref, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize('size', [(33, 47), (64, 64)])
@pytest.mark.parametrize('name', NAMES)
def test_empty_batch_gives_empty_outputs_of_the_right_shapes(name, size):
    model = build(name, out_indices=(0, 2, 3)).eval()
    outs = model(torch.randn(0, 3, *size))
    assert [tuple(o.shape) for o in outs] == expected_shapes(name, 0, size, (0, 2, 3))
    assert all(o.dtype == torch.float32 for o in outs)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert all(o.dtype == torch.bfloat16 for o in model(torch.randn(0, 3, *size)))
    model.train()
    assert [tuple(o.shape) for o in model(torch.randn(0, 3, *size))] == expected_shapes(name, 0, size, (0, 2, 3))


@pytest.mark.parametrize('batch', [1, 0])
def test_crossformer_minimum_size_applies_to_empty_batches_too(batch):
    with pytest.raises(ValueError, match='at least 32x32'):
        build('crossformer')(torch.randn(batch, 3, 31, 64))


# -- robustness: arguments ---------------------------------------------------------------
def with_depths(name, depths):
    cls, defaults = TINY[name]
    return dict(defaults['arch'], depths=depths)


@pytest.mark.parametrize('name', NAMES)
def test_bad_arguments_raise_the_documented_errors(name):
    cls, defaults = TINY[name]
    cases = [
        (ValueError, 'out_indices is empty', dict(out_indices=())),
        (ValueError, 'out of range', dict(out_indices=(4, ))),
        (ValueError, 'repeats', dict(out_indices=(1, -3))),
        (TypeError, 'norm_eval must be a bool', dict(norm_eval='yes')),
        (ValueError, 'frozen_stages', dict(frozen_stages=5)),
        (ValueError, "with_cp must be False, True or 'selective'", dict(with_cp='full')),
        (ValueError, 'in_channels', dict(in_channels=0)),
        (TypeError, 'drop_path_rate must be a number', dict(drop_path_rate='0.1')),
        (ValueError, r'drop_path_rate must be in \[0, 1\)', dict(drop_path_rate=1.)),
        (ValueError, "unknown arch 'x'", dict(arch='x')),
        (ValueError, 'missing', dict(arch={'embed_dims': defaults['arch']['embed_dims']})),
    ]
    for error, match, kwargs in cases:
        with pytest.raises(error, match=match):
            cls(**{**defaults, **kwargs})


@pytest.mark.parametrize('name', NAMES)
def test_a_stage_depth_of_zero_is_rejected(name):
    cls, defaults = TINY[name]
    depths = list(defaults['arch']['depths'])
    depths[1] = 0
    with pytest.raises(ValueError, match=r'depths.*one per stage'):
        cls(arch=dict(defaults['arch'], depths=depths))


@pytest.mark.parametrize('value, error, match', [
    ('4', TypeError, 'mlp_ratio must be a number'),
    (-1, ValueError, 'mlp_ratio must be > 0'),
    (0, ValueError, 'mlp_ratio must be > 0'),
])
def test_pale_mlp_ratio_is_checked(value, error, match):
    with pytest.raises(error, match=match):
        PaleTransformer(**TINY['pale'][1], mlp_ratio=value)


@pytest.mark.parametrize('value, error', [('4', TypeError), (-1, ValueError)])
def test_sgformer_arch_mlp_ratio_is_checked(value, error):
    with pytest.raises(error, match=r"arch\['mlp_ratio'\] must be"):
        SGFormer(arch=dict(TINY['sgformer'][1]['arch'], mlp_ratio=value))


@pytest.mark.parametrize('value', ['4', -1, (4, 4)])
def test_crossformer_mlp_ratio_is_checked(value):
    with pytest.raises(ValueError, match='mlp_ratio'):
        CrossFormer(**TINY['crossformer'][1], mlp_ratio=value)
