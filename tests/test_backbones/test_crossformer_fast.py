"""CrossFormer's block after issue 14's audit (layouts once per stage, one copy
back to pixels) equals the former implementation
(``tests/reference/crossformer_reference.py``), forward and gradients."""
import pytest
import torch
from mmvit_reference.crossformer_reference import CrossFormerBlock as ReferenceBlock

from mmvit_backbones.models.backbones.crossformer import CrossFormerBlock, CrossFormerStage


@pytest.mark.parametrize('size', [(14, 14), (25, 38), (13, 9), (6, 5)])
@pytest.mark.parametrize('long_distance, version', [(False, 2), (True, 1), (True, 2)])
@pytest.mark.parametrize('use_acl', [False, True])
def test_block_equals_reference(size, long_distance, version, use_acl):
    torch.manual_seed(0)
    args = dict(dim=32, num_heads=2, group_size=4, interval=2, long_distance=long_distance, lda_version=version,
                use_acl=use_acl)
    reference = ReferenceBlock(**args).double()
    block = CrossFormerBlock(**args).double()
    with torch.no_grad():
        for param in reference.parameters():
            param.normal_(0, 0.3)
    block.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, *size, 32, dtype=torch.float64)
    x_ref, x_new = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ref = reference(x_ref)
    # The stage's path (layout computed once, passed in) and the block alone.
    out_new = block(x_new, block.attn.layout(size, x.device))
    torch.testing.assert_close(out_new, out_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(block(x), out_ref, rtol=1e-10, atol=1e-10)
    grad = torch.randn_like(out_ref)
    out_ref.backward(grad)
    out_new.backward(grad)
    torch.testing.assert_close(x_new.grad, x_ref.grad, rtol=1e-10, atol=1e-10)
    ref_grads = dict(reference.named_parameters())
    for name, param in block.named_parameters():
        torch.testing.assert_close(param.grad, ref_grads[name].grad, rtol=1e-10, atol=1e-10, msg=name)


def test_stage_shares_one_layout_per_block_kind():
    torch.manual_seed(0)
    stage = CrossFormerStage(32, 4, 2, 4, 2, 2, 4., [0.] * 4, use_acl=False, downsample=False).double()
    x = torch.randn(1, 13, 9, 32, dtype=torch.float64)
    expected = x
    for block in stage.blocks:
        expected = block(expected)
    torch.testing.assert_close(stage(x), expected, rtol=0, atol=0)
