"""On CUDA, CrossFormer's DPB through the Triton kernels equals the PyTorch MLP
(``MMVIT_TRITON_DPB=0``), alone in fp32 and in whole blocks in fp32 and bf16
autocast, forward and backward, at native and odd sizes."""
import pytest
import torch

from mmvit_backbones.models.backbones.crossformer import CrossFormerBlock
from mmvit_backbones.models.layers.dpb_triton import _DPBFunction, dpb_mlp_reference, triton_dpb_available

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


@pytest.mark.parametrize('d, heads, group', [(6, 3, (7, 7)), (12, 6, (7, 7)), (24, 12, (7, 7)), (48, 24, (7, 7)),
                                             (6, 3, (25, 38)), (6, 3, (26, 39)), (4, 2, (4, 4)), (8, 4, (14, 14))])
def test_kernels_equal_pytorch(d, heads, group):
    assert triton_dpb_available(torch.device('cuda'))
    torch.manual_seed(0)
    shapes = [(d, 2), (d, ), (d, ), (d, ), (d, d), (d, ), (d, ), (d, ), (d, d), (d, ), (d, ), (d, ), (heads, d),
              (heads, )]
    params = [torch.randn(s, device='cuda').requires_grad_() for s in shapes]
    gh, gw = group
    rows, cols = torch.meshgrid(torch.arange(1 - gh, gh), torch.arange(1 - gw, gw), indexing='ij')
    offsets = torch.stack([rows, cols], -1).reshape(-1, 2).float().cuda()
    expected = dpb_mlp_reference(offsets, params)
    out = _DPBFunction.apply(offsets, *params)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(expected)
    for got, want in zip(torch.autograd.grad(out, params, grad), torch.autograd.grad(expected, params, grad)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('size, long_distance', [((56, 56), False), ((200, 304), True), ((33, 47), True)])
def test_block_with_triton_dpb_equals_pytorch(dtype, size, long_distance, monkeypatch):
    torch.manual_seed(0)
    block = CrossFormerBlock(96, 3, 7, 8, long_distance, 1).cuda()
    x = torch.randn(2, *size, 96, device='cuda')
    results = []
    for switch in ('1', '0'):
        monkeypatch.setenv('MMVIT_TRITON_DPB', switch)
        block.zero_grad()
        xi = x.clone().requires_grad_()
        with torch.autocast('cuda', dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            out = block(xi)
        out.float().square().mean().backward()
        results.append((out.float(), xi.grad, block.attn.pos.pos_proj.weight.grad.clone()))
    # The table is float32 either way; bf16 rounds it identically unless the fp32 values differ.
    tolerance = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, **tolerance)
