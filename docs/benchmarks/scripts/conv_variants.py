"""Time the convolutions of the backbones in each precision and memory layout (fwd + bwd).

    python docs/benchmarks/scripts/conv_variants.py [--out FILE.json]

Depthwise 3x3 convs (Pale's Q/K/V and CPE, SG-Former's DetailFFN and LePE,
CrossFormer++'s ACL) and CrossFormer's stem convs (3 input channels, kernels
4..32, stride 4), on the layouts the backbones hand them: a channels-last
strided view of (B, H*W, C) tokens, or plain NCHW.
"""
import argparse
import functools
import json

import torch
import torch.nn.functional as F

CASES = {
    # name: (B, C, H, W, kernel, stride, groups)
    'dw3x3_sg_ffn_stage1': (64, 256, 56, 56, 3, 1, 256),
    'dw3x3_pale_t_stage1': (64, 64, 56, 56, 3, 1, 64),
    'dw3x3_pale_t_stage3': (64, 256, 14, 14, 3, 1, 256),
    'dw3x3_dense_stage1': (2, 256, 200, 304, 3, 1, 256),
    'stem_k4_224': (64, 3, 224, 224, 4, 4, 1),
    'stem_k32_224': (64, 3, 224, 224, 32, 4, 1),
    'stem_k32_dense': (2, 3, 800, 1216, 32, 4, 1),
    'merge_k4_224': (64, 96, 56, 56, 4, 2, 1),
}


def bench(fn, iters=20):
    for _ in range(5):
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


def run(x, weight, bias, stride, padding, groups, bf16, backward):
    with torch.autocast('cuda', torch.bfloat16, enabled=bf16):
        out = F.conv2d(x, weight, bias, stride, padding, 1, groups)
    if backward:
        out.float().sum().backward()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--out')
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    results = []
    for name, (b, c, h, w, k, s, g) in CASES.items():
        out_c = c if g > 1 else (48 if k == 4 else 12)
        if name.startswith('merge'):
            out_c = 96
        weight = torch.randn(out_c, c // g, k, k, device='cuda', requires_grad=True)
        bias = torch.randn(out_c, device='cuda', requires_grad=True)
        for layout in ('tokens_view', 'nchw', 'channels_last_weights'):
            x = torch.randn(b, h * w, c, device='cuda')
            if layout == 'tokens_view':  # what nlc_to_nchw gives: channels-last strides
                x = x.transpose(1, 2).reshape(b, c, h, w)
            else:
                x = x.transpose(1, 2).reshape(b, c, h, w).contiguous()
            if layout == 'channels_last_weights':
                x = x.contiguous(memory_format=torch.channels_last)
            x.requires_grad_(True)
            for precision in ('fp32', 'bf16'):
                row = dict(case=name, layout=layout, precision=precision)

                try:
                    ww = weight.contiguous(memory_format=torch.channels_last) \
                        if layout == 'channels_last_weights' else weight
                    padding = (k - s) // 2 if g == 1 else k // 2
                    conv_args = (x, ww, bias, s, padding, g, precision == 'bf16')
                    row['fwd_ms'] = round(bench(functools.partial(run, *conv_args, backward=False)), 4)
                    row['fwd_bwd_ms'] = round(bench(functools.partial(run, *conv_args, backward=True)), 4)
                except RuntimeError as error:
                    row['error'] = str(error)[:120]
                results.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
