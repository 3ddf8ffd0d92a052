"""SG-Former's eager-speed path (issue 15) equals the implementation it replaced, kept in
``tests/reference/sg_former_reference.py``: block by block in float32 (forward and gradients, significance
ties included) and the whole backbone in float64, where rounding cannot reorder near-tied significances."""
import pytest
import torch
from mmvit_reference import sg_former_reference as reference

from mmvit_backbones.models.backbones import SGFormer
from mmvit_backbones.models.backbones.sg_former import (
    GlobalAttention,
    HybridScaleAttention,
    SelfGuidedAttention,
)
from mmvit_backbones.models.layers import fused_attention

TINY = dict(embed_dims=[16, 32, 64, 32], depths=[2, 2, 2, 1], num_heads=[2, 2, 4, 2])


def twins(new, old, std=0.3, seed=1):
    """The new module and its reference with the same random weights."""
    torch.manual_seed(seed)
    for p in new.parameters():
        p.data.normal_(0, std)
    old.load_state_dict(new.state_dict())
    return new, old


def run(module, x, *args):
    """Outputs (tensors only) and gradients of the input and every parameter."""
    x = x.clone().requires_grad_()
    outs = [o for o in module(x, *args) if o is not None]
    loss = sum((o * torch.linspace(-1, 1, o.shape[-1], dtype=o.dtype)).square().sum() for o in outs
               if o.requires_grad)
    grads = torch.autograd.grad(loss, [x] + list(module.parameters()), allow_unused=True)
    return [o.detach() for o in outs], grads


def assert_same(new, old, tolerance=1e-5):
    """Equal up to float32 rounding: ``tolerance`` relative to each element and to the tensor's scale.

    Gradients get 10x that against their scale: they are sums of many products with cancellation, summed
    in another order where linears are joined (the float64 test of the whole backbone is the tight one).
    """
    (outs, grads), (ref_outs, ref_grads) = new, old
    assert len(outs) == len(ref_outs)
    for out, ref in zip(outs, ref_outs):
        assert out.dtype == ref.dtype
        torch.testing.assert_close(out, ref, rtol=tolerance, atol=tolerance * ref.abs().max().item())
    for grad, ref in zip(grads, ref_grads):
        if ref is None:
            assert grad is None or not grad.any()
        else:
            torch.testing.assert_close(grad, ref, rtol=tolerance, atol=10 * tolerance * ref.abs().max().item())


# Native sizes and sizes that pad windows and the coarse merge; (3, 2) is smaller than a window.
@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'plain'])
@pytest.mark.parametrize('sr,size', [(8, (56, 56)), (2, (14, 14)), (8, (9, 10)), (4, (17, 12)), (2, (3, 2))])
def test_hybrid_scale_block_equals_the_reference(sr, size, fused):
    new, old = twins(HybridScaleAttention(16, 4, sr, 7), reference.HybridScaleAttention(16, 4, sr, 7))
    x = torch.randn(2, size[0] * size[1], 16)
    with fused_attention(fused):
        assert_same(run(new, x, size), run(old, x, size))


@pytest.mark.parametrize('stable', [False, True])
@pytest.mark.parametrize('rates,size', [((196, 56, 28), (56, 56)), ((49, 14, 7), (9, 7)), ((2, 1), (14, 14)),
                                        ((2, 1), (3, 3)), ((4, 2, 1), (1, 1)), ((4, 2, 1), (5, 6))])
def test_self_guided_block_equals_the_reference_with_ties(rates, size, stable):
    new, old = twins(SelfGuidedAttention(16, 4, rates, stable), reference.SelfGuidedAttention(16, 4, rates, stable),
                     std=0.1)
    x = torch.randn(2, size[0] * size[1], 16)
    significance = torch.rand(2, *size)
    significance[:, :2] = 0.5  # ties: each order must break them as the reference's sort did
    significance[1, :, -1] = 0.25
    assert_same(run(new, x, size, significance), run(old, x, size, significance))


def test_global_block_equals_the_reference():
    new, old = twins(GlobalAttention(16, 4), reference.GlobalAttention(16, 4))
    x = torch.randn(2, 30, 16)
    assert_same(run(new, x, (5, 6)), run(old, x, (5, 6)))


@pytest.mark.parametrize('size', [(224, 224), (57, 45)])
def test_whole_backbone_equals_the_reference_in_float64(size):
    torch.manual_seed(0)
    model = SGFormer(arch=TINY, drop_path_rate=0.).double().train()
    old = reference.ReferenceSGFormer(model).double().train()
    old.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, *size, dtype=torch.float64)
    results = []
    for net, forward in ((model, model.forward_with_significance), (old, old.forward)):
        outs, maps = forward(x)
        loss = sum((o * o.mean(1, keepdim=True)).sum() for o in outs)
        grads = torch.autograd.grad(loss, list(net.parameters()))
        results.append((outs, maps, grads))
    (outs, maps, grads), (ref_outs, ref_maps, ref_grads) = results
    for out, ref in zip(outs + tuple(maps), ref_outs + tuple(ref_maps)):
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for (name, _), grad, ref in zip(model.named_parameters(), grads, ref_grads):
        torch.testing.assert_close(grad, ref, rtol=1e-9, atol=1e-10, msg=name)


def test_bf16_autocast_as_close_to_float32_as_the_reference():
    """Under autocast the new path casts each block's input once (the values autocast's casts gave). Its
    outputs stay within the project's SG-Former bf16 bound of float32 (6e-2, tests/test_cuda), as the
    reference's do; they are not compared with the reference's bf16 outputs, since bf16 logits reorder
    near-tied tokens differently in the two (a discrete change of ~2e-2 either way)."""
    torch.manual_seed(0)
    model = SGFormer(arch=TINY, drop_path_rate=0.).eval()
    old = reference.ReferenceSGFormer(model).eval()
    old.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected, expected_maps = old(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            outs, maps = model.forward_with_significance(x)
            ref_outs, _ = old(x)
    for sig, ref in zip(maps, expected_maps):
        assert sig.dtype == torch.float32
        torch.testing.assert_close(sig, ref, rtol=2e-2, atol=2e-2)
    for out, ref_out, ref in zip(outs, ref_outs, expected):
        error = (out.float() - ref).norm() / ref.norm()
        assert error < 6e-2 and error < 3 * (ref_out.float() - ref).norm() / ref.norm()


def test_significance_keeps_float64():
    model = HybridScaleAttention(16, 4, 4, 7).double()
    _, significance = model(torch.randn(1, 90, 16, dtype=torch.float64), (9, 10))
    assert significance.dtype == torch.float64
