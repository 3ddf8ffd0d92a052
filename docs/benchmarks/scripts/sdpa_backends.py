"""Time each SDPA backend on the attention shapes of the backbones (batch 64 at 224x224).

    python docs/benchmarks/scripts/sdpa_backends.py [--out FILE.json]

Forward + backward (q, k, v and a bias that requires grad, as the DPB bias does)
and forward alone, fp32 and bf16, for every backend that accepts the case.
"""
import argparse
import functools
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

# name: (batch, heads, Nq, Nk, head_dim, bias shape or None)
CASES = {
    'crossformer_s_stage1': (64 * 64, 3, 49, 49, 32, (3, 49, 49)),
    'crossformer_s_stage3': (64 * 4, 12, 49, 49, 32, (12, 49, 49)),
    'crossformer_s_stage1_nobias': (64 * 64, 3, 49, 49, 32, None),
    'pale_t_stage1_rows': (64 * 8, 1, 392, 392, 32, None),
    'pale_t_stage3_rows': (64 * 2, 4, 98, 98, 32, None),
    'sgformer_s_stage1_guided': (64, 2, 3136, 120, 32, None),
    'sgformer_s_stage1_window': (64 * 64, 1, 49, 49, 32, None),
}
BACKENDS = {'math': SDPBackend.MATH, 'efficient': SDPBackend.EFFICIENT_ATTENTION,
            'flash': SDPBackend.FLASH_ATTENTION, 'cudnn': SDPBackend.CUDNN_ATTENTION}


def bench(fn, iters=20):
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(5):
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / iters)
    return sorted(times)[2]


def run(q, k, v, bias, grad):
    """Forward alone (``grad=None``, no autograd) or forward and backward."""
    with torch.set_grad_enabled(grad is not None):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    if grad is not None:
        out.backward(grad)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--out')
    args = parser.parse_args()
    results = []
    for name, (b, h, nq, nk, d, bias_shape) in CASES.items():
        for dtype in (torch.float32, torch.bfloat16):
            q = torch.randn(b, h, nq, d, device='cuda', dtype=dtype, requires_grad=True)
            k = torch.randn(b, h, nk, d, device='cuda', dtype=dtype, requires_grad=True)
            v = torch.randn(b, h, nk, d, device='cuda', dtype=dtype, requires_grad=True)
            bias = None
            if bias_shape is not None:
                bias = torch.randn(bias_shape, device='cuda', dtype=dtype, requires_grad=True)
            grad = torch.randn(b, h, nq, d, device='cuda', dtype=dtype)
            for backend_name, backend in BACKENDS.items():
                row = dict(case=name, dtype=str(dtype).split('.')[-1], backend=backend_name)
                try:
                    with sdpa_kernel([backend]):
                        row['fwd_ms'] = round(bench(functools.partial(run, q, k, v, bias, None)), 4)
                        row['fwd_bwd_ms'] = round(bench(functools.partial(run, q, k, v, bias, grad)), 4)
                except RuntimeError as error:
                    row['error'] = str(error).split('\n')[0][:120]
                results.append(row)
                print(json.dumps(row), flush=True)
                q.grad = k.grad = v.grad = None
                if bias is not None:
                    bias.grad = None
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
