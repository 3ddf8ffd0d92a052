"""On CUDA, Pale's and CrossFormer's issue-14 blocks equal the former ones
(``tests/reference/``) in fp32 and under bf16 autocast, forward and backward,
at native and odd sizes; the flash/efficient SDPA kernels stay in use."""
import pytest
import torch
from mmvit_reference import crossformer_reference, pale_reference
from torch.nn.attention import SDPBackend, sdpa_kernel

from mmvit_backbones.models.backbones.crossformer import CrossFormerBlock
from mmvit_backbones.models.backbones.pale_transformer import PaleBlock, PaleLayouts, convert_separate_qkv

# fp32 compared in IEEE fp32: cuDNN's default TF32 convolutions round the fused grouped 1x1 convolution and
# the three separate ones differently (~1e-3).
pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device'),
              pytest.mark.usefixtures('ieee_fp32')]


# bf16: both paths round differently (the new one keeps CPE in fp32 and fuses the Q/K/V convolutions),
# so they are compared against each other at bf16's resolution over a block.
TOLERANCE = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.bfloat16: dict(rtol=5e-2, atol=5e-2)}


def run(block, call, x, dtype):
    x = x.clone().requires_grad_()
    # Flash / memory-efficient only: a math fallback would fail here.
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]):
        with torch.autocast('cuda', dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            out = call(block, x)
        out.float().square().mean().backward()
    return out.float(), x.grad.float()


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('size', [(56, 56), (200, 304), (33, 47), (7, 7)])
def test_pale_block(dtype, size):
    torch.manual_seed(0)
    args = (64, 2, 4., 0., dict(type='LN'), dict(type='BN'))
    old = pale_reference.PaleBlock(*args).cuda()
    new = PaleBlock(*args).cuda()
    new.load_state_dict(convert_separate_qkv(old.state_dict()))
    x = torch.randn(2, size[0] * size[1], 64, device='cuda')
    out_old, grad_old = run(old, lambda m, t: m(t, pale_reference.pale_layout(size, (7, 7), t.device)), x, dtype)
    out_new, grad_new = run(
        new, lambda m, t: m(t.unflatten(1, size), PaleLayouts.build(size, (7, 7), t.device)).flatten(1, 2), x, dtype)
    torch.testing.assert_close(out_new, out_old, **TOLERANCE[dtype])
    torch.testing.assert_close(grad_new, grad_old, **TOLERANCE[dtype])


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('size', [(56, 56), (200, 304), (33, 47)])
@pytest.mark.parametrize('long_distance', [False, True])
def test_crossformer_block(dtype, size, long_distance):
    torch.manual_seed(0)
    args = (96, 3, 7, 8, long_distance, 1)
    old = crossformer_reference.CrossFormerBlock(*args).cuda()
    new = CrossFormerBlock(*args).cuda()
    new.load_state_dict(old.state_dict())
    x = torch.randn(2, *size, 96, device='cuda')
    out_old, grad_old = run(old, lambda m, t: m(t), x, dtype)
    out_new, grad_new = run(new, lambda m, t: m(t, m.attn.layout(size, t.device)), x, dtype)
    torch.testing.assert_close(out_new, out_old, **TOLERANCE[dtype])
    torch.testing.assert_close(grad_new, grad_old, **TOLERANCE[dtype])
