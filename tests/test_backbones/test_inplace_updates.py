"""Weights changed in place or swapped without autograd (EMA models, ``.data`` writes, ``load_state_dict(
assign=True)``) are what the next forward uses, for every backbone (issue 13, item 2: SG-Former's resized
position-embedding cache went stale under mmengine's ExponentialMovingAverage)."""
import copy

import pytest
import torch
from mmengine.model import ExponentialMovingAverage

from mmvit_backbones.models.backbones import CrossFormer, CrossFormerPP, PaleTransformer, SGFormer

BACKBONES = {
    'crossformer': lambda: CrossFormer(arch=dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8])),
    'crossformerpp': lambda: CrossFormerPP(arch=dict(embed_dims=16, depths=[1, 1, 4, 1], num_heads=[1, 2, 4, 8])),
    'pale': lambda: PaleTransformer(
        arch=dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_heads=[2, 2, 4, 4]), drop_path_rate=0.),
    'sgformer': lambda: SGFormer(
        arch=dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 1], num_heads=[2, 2, 4, 8]), drop_path_rate=0.),
}
# Not the pre-training size: SG-Former resizes its position embedding here.
X = torch.rand(1, 3, 64, 64)


def build(name):
    torch.manual_seed(0)
    return BACKBONES[name]().eval()


def fresh_outputs(state_dict, name):
    """What a newly built model with these weights gives."""
    model = build(name)
    model.load_state_dict(state_dict)
    with torch.no_grad():
        return model(X)


def assert_outputs(model, name):
    with torch.no_grad():
        outs = model(X)
    for out, expected in zip(outs, fresh_outputs(model.state_dict(), name)):
        torch.testing.assert_close(out, expected)


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_ema_model_uses_its_updated_weights(name):
    """The issue's repro: mmengine's EMA updates the averaged parameters through ``.data``."""
    model = build(name)
    ema = ExponentialMovingAverage(model, momentum=0.5)
    ema.eval()
    with torch.no_grad():
        ema(X)  # a forward at this size before the update
        for param in model.parameters():
            param.add_(torch.randn_like(param))
    ema.update_parameters(model)
    assert_outputs(ema.module, name)


@pytest.mark.parametrize('how', ['data', 'assign'])
@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_weights_swapped_without_autograd_are_used(name, how):
    model = build(name)
    with torch.no_grad():
        model(X)
    params = dict(model.named_parameters())  # buffers (BatchNorm statistics) unchanged
    other = {k: v + torch.randn_like(v) if k in params else v for k, v in model.state_dict().items()}
    if how == 'data':
        for param_name, param in model.named_parameters():
            param.data = other[param_name].clone()
    else:
        model.load_state_dict(copy.deepcopy(other), assign=True)
    assert_outputs(model, name)
