"""The Triton DPB kernels (``layers/dpb_triton.py``) equal the PyTorch MLP, run on
CPU through Triton's interpreter (``TRITON_INTERPRET=1``, set before triton is
imported, hence the subprocess). On CUDA: ``tests/test_cuda/test_cuda_dpb_triton.py``."""
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip('triton')

SCRIPT = textwrap.dedent('''
    import torch
    from mmvit_backbones.models.backbones.crossformer import CrossFormerBlock
    from mmvit_backbones.models.layers.dpb_triton import _DPBFunction, dpb_mlp_reference, triton_dpb_available

    assert triton_dpb_available(torch.device('cpu'))
    torch.manual_seed(0)
    # pos_dims of CrossFormer-S stages 1-2 (C/16 = 6, 12) and a power of two; odd row counts.
    for d, heads, rows in [(6, 3, 169), (12, 6, 37), (8, 2, 1)]:
        shapes = [(d, 2), (d,), (d,), (d,), (d, d), (d,), (d,), (d,), (d, d), (d,), (d,), (d,), (heads, d),
                  (heads,)]
        params = [torch.randn(s).requires_grad_() for s in shapes]
        offsets = torch.randint(-12, 13, (rows, 2)).float()
        expected = dpb_mlp_reference(offsets, params)
        out = _DPBFunction.apply(offsets, *params)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        grad = torch.randn_like(expected)
        for got, want in zip(torch.autograd.grad(out, params, grad), torch.autograd.grad(expected, params, grad)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)

    # Through a whole block: the interpreted kernels against MMVIT_TRITON_DPB=0.
    import os
    block = CrossFormerBlock(96, 3, 7, 8, True, 1)
    x = torch.randn(1, 9, 11, 96)
    outputs = []
    for switch in ('1', '0'):
        os.environ['MMVIT_TRITON_DPB'] = switch
        block.zero_grad()
        xi = x.clone().requires_grad_()
        out = block(xi)
        out.square().mean().backward()
        outputs.append((out, xi.grad, block.attn.pos.pos1[2].weight.grad.clone()))
    for got, want in zip(*outputs):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    print('ok')
''')


def test_triton_dpb_equals_pytorch_in_the_interpreter():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, TRITON_INTERPRET='1', PYTHONPATH=root + os.pathsep + os.environ.get('PYTHONPATH', ''))
    result = subprocess.run([sys.executable, '-c', SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stdout.strip().endswith('ok'), result.stderr[-3000:]
