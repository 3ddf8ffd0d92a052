"""SG-Former's eager-speed path (issue 15) against the implementation it replaced
(``tests/reference/sg_former_reference.py``) on a CUDA device, block by block: fp32 forward and gradients
equal (IEEE fp32 matmuls; tie-free significance, since CUDA's sort order of ties is its own) and bf16
autocast as close to fp32 as the reference is, at a native and an odd size. Skipped without CUDA."""
import pytest
import torch
from mmvit_reference import sg_former_reference as reference

from mmvit_backbones.models.backbones.sg_former import (
    GlobalAttention,
    HybridScaleAttention,
    SelfGuidedAttention,
)

pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device'),
              pytest.mark.usefixtures('ieee_fp32')]


CASES = {
    'hybrid': (lambda m: m.HybridScaleAttention(64, 4, 4, 7), HybridScaleAttention, (64, 4, 4, 7)),
    'guided': (lambda m: m.SelfGuidedAttention(64, 4, (49, 14, 7)), SelfGuidedAttention, (64, 4, (49, 14, 7))),
    'global': (lambda m: m.GlobalAttention(64, 4), GlobalAttention, (64, 4)),
}
SIZES = [(56, 56), (29, 38)]


def build(kind):
    make_reference, cls, args = CASES[kind]
    torch.manual_seed(0)
    new = cls(*args)
    for p in new.parameters():
        p.data.normal_(0, 0.1)
    old = make_reference(reference)
    old.load_state_dict(new.state_dict())
    return new.cuda(), old.cuda()


def step(module, x, size, significance, bf16):
    x = x.clone().requires_grad_()
    with torch.autocast('cuda', dtype=torch.bfloat16, enabled=bf16):
        out, sig = module(x, size, significance)
    out.float().square().mean().backward()
    return out.float(), sig, x.grad


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('kind', sorted(CASES))
def test_fast_path_equals_reference_in_fp32(kind, size):
    new, old = build(kind)
    x = torch.randn(2, size[0] * size[1], 64, device='cuda')
    significance = torch.rand(2, *size, device='cuda')  # continuous: no ties
    got, expected = step(new, x, size, significance, False), step(old, x, size, significance, False)
    for a, b in zip(got, expected):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())
    for (name, p), q in zip(new.named_parameters(), old.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-4 * q.grad.abs().max().item(), msg=name)


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('kind', sorted(CASES))
def test_fast_path_bf16_as_close_to_fp32_as_reference(kind, size):
    new, old = build(kind)
    x = torch.randn(2, size[0] * size[1], 64, device='cuda')
    significance = torch.rand(2, *size, device='cuda')
    exact = step(old, x, size, significance, False)
    got, ref = step(new, x, size, significance, True), step(old, x, size, significance, True)
    for a, b, e in zip(got, ref, exact):
        if e is None:
            continue
        assert a.dtype == b.dtype
        error, ref_error = (a.float() - e).norm() / e.norm(), (b.float() - e).norm() / e.norm()
        assert error <= 1.5 * ref_error + 1e-3, (error, ref_error)
