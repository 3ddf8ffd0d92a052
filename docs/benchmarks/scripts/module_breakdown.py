"""Where a backbone's GPU time goes, by module kind: forward ranges and the top kernels of fwd + bwd.

    python docs/benchmarks/scripts/module_breakdown.py SGFormer:s --size 800 1216 --batch 2 --dtype bf16 --out F

Every submodule of the listed kinds is wrapped in a ``record_function`` range named ``fwd:<Kind>`` (forward
only: backward kernels are not attributed to modules by the profiler); the file gets the ranges' CUDA time
and the 30 kernels with the most self CUDA time over three forward + backward steps.
"""
import argparse

import torch
from torch.profiler import ProfilerActivity, profile, record_function

import mmvit_backbones.models.backbones as backbones

KINDS = ('HybridScaleAttention', 'SelfGuidedAttention', 'GlobalAttention', 'DetailFFN', 'DepthwiseConv',
         'Conv2d', 'LayerNorm', 'Linear', 'CrossFormerBlock', 'PaleBlock')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('model', help='Type:arch, e.g. SGFormer:s')
    parser.add_argument('--size', type=int, nargs=2, default=[800, 1216])
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--dtype', choices=['fp32', 'bf16'], default='bf16')
    parser.add_argument('--out', required=True)
    args = parser.parse_args()
    name, arch = args.model.split(':')
    model = getattr(backbones, name)(arch=arch).cuda().train()
    ranges = {}

    def enter(module, inputs):
        ranges[id(module)] = record_function(f'fwd:{type(module).__name__}')
        ranges[id(module)].__enter__()

    def leave(module, inputs, output):
        ranges.pop(id(module)).__exit__(None, None, None)

    for module in model.modules():
        if type(module).__name__ in KINDS:
            module.register_forward_pre_hook(enter)
            module.register_forward_hook(leave)
    x = torch.randn(args.batch, 3, *args.size, device='cuda')

    def step():
        with torch.autocast('cuda', dtype=torch.bfloat16, enabled=args.dtype == 'bf16'):
            loss = sum(o.float().mean() for o in model(x))
        loss.backward()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    events = prof.key_averages()
    with open(args.out, 'w') as f:
        f.write('module ranges (forward; nested ranges are counted in their parents too)\n')
        for event in sorted((e for e in events if e.key.startswith('fwd:')),
                            key=lambda e: -e.device_time_total):
            f.write(f'{event.key:40s} cuda {event.device_time_total / 3e3:9.2f} ms/step  calls {event.count // 3}\n')
        f.write('\n' + events.table(sort_by='self_cuda_time_total', row_limit=30, max_name_column_width=80))


if __name__ == '__main__':
    main()
