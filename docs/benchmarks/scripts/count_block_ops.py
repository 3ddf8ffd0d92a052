"""Count the aten ops one block dispatches in forward + backward, on CPU.

A host-overhead proxy for the eager GPU loop: every aten op that reaches a
backend is (at least) one kernel launch on CUDA. Counted with a
``TorchDispatchMode`` (below autograd and autocast, so casts count), in fp32
and under ``torch.autocast('cpu', dtype=torch.bfloat16)``; also the CPU wall
time of the step at a small size. Compares the former implementation kept in
``tests/reference/`` with the current one, per block kind.

    python docs/benchmarks/scripts/count_block_ops.py [--json out.json] [--top 0]

``count_ops(fn)`` is generic: any callable's ops, by name.
"""
import argparse
import collections
import importlib.util
import json
import time
from pathlib import Path
from typing import Callable, Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parents[3]


class _OpCounter(TorchDispatchMode):

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))


# Ops that never launch a kernel (metadata only).
VIEW_OPS = frozenset({
    'view', '_unsafe_view', 'permute', 'transpose', 't', 'expand', 'slice', 'select', 'unsqueeze', 'squeeze',
    'split', 'split_with_sizes', 'unbind', 'alias', 'as_strided', 'detach', 'unflatten', 'flatten', 'narrow',
    '_reshape_alias', 'empty', 'empty_strided', 'empty_like', 'lift_fresh', 'lift_fresh_copy', 'is_same_size',
    'sym_size', 'sym_stride', 'sym_numel', 'sym_storage_offset', 'numel', 'size', 'stride'
})


def count_ops(fn: Callable[[], None]) -> Counter[str]:
    """Aten ops dispatched while ``fn()`` runs (forward and backward if it calls backward)."""
    with _OpCounter() as counter:
        fn()
    return counter.counts


def kernel_ops(counts: Counter[str]) -> int:
    """Ops that do work (views and allocations excluded)."""
    return sum(n for name, n in counts.items() if name not in VIEW_OPS)


def load_reference(name: str):
    path = ROOT / 'tests' / 'reference' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(f'mmvit_reference_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pale_cases(size, dims=64, heads=2, pale=7, batch=2):
    from mmvit_backbones.models.backbones.pale_transformer import PaleBlock, PaleLayouts
    ref = load_reference('pale_reference')
    args = (dims, heads, 4., 0., dict(type='LN'), dict(type='BN'))
    x = torch.randn(batch, size[0] * size[1], dims)
    old = ref.PaleBlock(*args)
    new = PaleBlock(*args)
    yield 'before', old, lambda t: old(t, ref.pale_layout(size, (pale, pale))), x
    yield 'after', new, lambda t: new(t, PaleLayouts.build(size, (pale, pale))), x


def crossformer_cases(size, dims=96, heads=3, group=7, interval=8, long_distance=False, version=1, batch=2):
    from mmvit_backbones.models.backbones import crossformer
    ref = load_reference('crossformer_reference')
    x = torch.randn(batch, size[0], size[1], dims)
    args = (dims, heads, group, interval, long_distance, version)
    old = ref.CrossFormerBlock(*args)
    new = crossformer.CrossFormerBlock(*args)
    layout = crossformer.lsda_layout(size, group, interval, long_distance, version) \
        if hasattr(crossformer, 'lsda_layout') else None
    yield 'before', old, lambda t: old(t), x
    yield 'after', new, (lambda t: new(t, layout)) if layout is not None else (lambda t: new(t)), x


def measure(block, call, x, bf16: bool, repeats: int = 5):
    block.train()

    def step():
        block.zero_grad(set_to_none=True)  # as a training loop does: no gradient accumulation kernels
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            out = call(x.clone().requires_grad_())
        out.float().sum().backward()

    step()  # warm caches (offsets, autocast weight casts happen every step anyway)
    counts = count_ops(step)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return counts, (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--json', help='write the table here')
    parser.add_argument('--top', type=int, default=0, help='also print the N most frequent ops of each case')
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cases = {
        'Pale-T stage 1 block, 56x56 (cls)': lambda: pale_cases((56, 56)),
        'Pale-T stage 1 block, 50x76 (dense-like, padded, two calls)': lambda: pale_cases((50, 76)),
        'CrossFormer-S stage 1 SDA block, 56x56': lambda: crossformer_cases((56, 56)),
        'CrossFormer-S stage 1 LDA v1 block, 50x76 (padded)': lambda: crossformer_cases((50, 76),
                                                                                       long_distance=True),
        'CrossFormer-S stage 1 SDA block, 50x76 (padded)': lambda: crossformer_cases((50, 76)),
    }
    rows = []
    print('| block | impl | ops fp32 (kernels) | ops bf16 autocast (kernels) | CPU ms fp32 / bf16 |')
    print('|---|---|---|---|---|')
    for name, make in cases.items():
        for impl, block, call, x in make():
            fp32, ms32 = measure(block, call, x, bf16=False)
            bf16, ms16 = measure(block, call, x, bf16=True)
            row = dict(block=name, impl=impl, ops_fp32=sum(fp32.values()), kernels_fp32=kernel_ops(fp32),
                       ops_bf16=sum(bf16.values()), kernels_bf16=kernel_ops(bf16), ms_fp32=ms32, ms_bf16=ms16,
                       casts_bf16=bf16.get('_to_copy', 0), top_bf16=dict(bf16.most_common(args.top or 12)))
            rows.append(row)
            print(f"| {name} | {impl} | {row['ops_fp32']} ({row['kernels_fp32']}) | {row['ops_bf16']} "
                  f"({row['kernels_bf16']}, {row['casts_bf16']} casts) | {ms32:.1f} / {ms16:.1f} |")
            if args.top:
                print('    ', dict(bf16.most_common(args.top)))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(torch=torch.__version__, rows=rows), indent=1))


if __name__ == '__main__':
    main()
