"""Every backbone traces into one graph: ``torch.compile(fullgraph=True)`` raises on any graph break.

The ``eager`` backend runs the captured graph with ordinary ops, so these tests
check the tracing (what makes a backbone compile-friendly) without paying for
code generation on CPU; outputs and gradients must equal eager mode.
"""
import pytest
import torch

from mmvit_backbones.models.backbones import CrossFormer, CrossFormerPP, PaleTransformer, SGFormer

# Tiny variants that still have every block kind: CrossFormer SDA + LDA, CrossFormer++ ACL (after
# the third block of a stage), Pale row + column branches, SG-Former hybrid-scale + self-guided + global.
BACKBONES = {
    'crossformer': lambda: CrossFormer(arch=dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8])),
    'crossformerpp': lambda: CrossFormerPP(arch=dict(embed_dims=16, depths=[1, 1, 4, 1], num_heads=[1, 2, 4, 8])),
    'pale': lambda: PaleTransformer(
        arch=dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_heads=[2, 2, 4, 4]), drop_path_rate=0.),
    'sgformer': lambda: SGFormer(
        arch=dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 1], num_heads=[2, 2, 4, 8]), drop_path_rate=0.),
}


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_fullgraph_compile_matches_eager(name):
    torch.manual_seed(0)
    model = BACKBONES[name]()
    # An odd, non-square size: padding and masking are traced too.
    x = torch.randn(2, 3, 45, 61)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend='eager', dynamic=False)

    model.train()  # no stochastic depth in these variants: train mode is deterministic
    expected = model(x)
    grads = torch.autograd.grad(sum(o.square().mean() for o in expected), list(model.parameters()))
    got = compiled(x)
    compiled_grads = torch.autograd.grad(sum(o.square().mean() for o in got), list(model.parameters()))
    for out, ref in zip(got, expected):
        torch.testing.assert_close(out, ref)
    for grad, ref in zip(compiled_grads, grads):
        torch.testing.assert_close(grad, ref)

    model.eval()
    with torch.no_grad():
        for out, ref in zip(compiled(x), model(x)):
            torch.testing.assert_close(out, ref)
