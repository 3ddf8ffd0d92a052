"""Count the aten ops one block dispatches in forward + backward, on CPU.

A host-overhead proxy for the eager GPU loop: every aten op that reaches a
backend is (at least) one kernel launch on CUDA. Counted with a
``TorchDispatchMode`` (below autograd and autocast, so casts count), in fp32
and under ``torch.autocast('cpu', dtype=torch.bfloat16)``; also the CPU wall
time of the step at a small size. Compares the former implementation kept in
``tests/reference/`` with the current one, per block kind.

    python docs/benchmarks/scripts/count_block_ops.py [--json out.json] [--top 0]
    # on the GPU: the same blocks at stage-1 sizes of the two geometries, eager ms per fwd+bwd
    python docs/benchmarks/scripts/count_block_ops.py --device cuda --geometry cls dense --json blocks.json

``count_ops(fn)`` is generic: any callable's ops, by name. With
``TRITON_INTERPRET=1`` CrossFormer's DPB runs its Triton kernels (interpreted on
CPU); each launch counts as one op and the interpreter's own tensor traffic
is left out.
"""
import argparse
import collections
import importlib.util
import json
import time
from pathlib import Path
from typing import Callable, Counter, List

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parents[3]


class _OpCounter(TorchDispatchMode):

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = collections.Counter()
        self.paused = 0  # inside an interpreted Triton launch: its tensor traffic is not the kernel's

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self.paused:
            self.counts[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))


_COUNTERS: List[_OpCounter] = []


class _CountedLaunch:
    """A Triton kernel whose launch counts as one op, ``triton_kernel`` (under
    ``TRITON_INTERPRET=1`` the interpreter's own tensor ops are not counted)."""

    def __init__(self, kernel) -> None:
        self.kernel = kernel

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            counter = _COUNTERS[-1] if _COUNTERS else None
            if counter is None:
                return self.kernel[grid](*args, **kwargs)
            counter.counts['triton_kernel'] += 1
            counter.paused += 1
            try:
                return self.kernel[grid](*args, **kwargs)
            finally:
                counter.paused -= 1
        return launch


def count_triton_launches() -> None:
    """Make the DPB kernels count as one op per launch (see :class:`_CountedLaunch`)."""
    from mmvit_backbones.models.layers import dpb_triton
    if dpb_triton.triton is not None:
        for name in ('_dpb_forward_kernel', '_dpb_backward_kernel'):
            setattr(dpb_triton, name, _CountedLaunch(getattr(dpb_triton, name)))


# Ops that never launch a kernel (metadata only).
VIEW_OPS = frozenset({
    'view', '_unsafe_view', 'permute', 'transpose', 't', 'expand', 'slice', 'select', 'unsqueeze', 'squeeze',
    'split', 'split_with_sizes', 'unbind', 'alias', 'as_strided', 'detach', 'unflatten', 'flatten', 'narrow',
    '_reshape_alias', 'empty', 'empty_strided', 'empty_like', 'new_empty', 'new_empty_strided',
    'lift_fresh', 'lift_fresh_copy', 'is_same_size',
    'sym_size', 'sym_stride', 'sym_numel', 'sym_storage_offset', 'numel', 'size', 'stride'
})


def count_ops(fn: Callable[[], None]) -> Counter[str]:
    """Aten ops dispatched while ``fn()`` runs (forward and backward if it calls backward)."""
    with _OpCounter() as counter:
        _COUNTERS.append(counter)
        try:
            fn()
        finally:
            _COUNTERS.pop()
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
    # Layouts are built per call on the input's device, as each stage does once per forward.
    yield 'before', old, lambda t: old(t, ref.pale_layout(size, (pale, pale), t.device)), x
    yield 'after', new, lambda t: new(t.unflatten(1, size), PaleLayouts.build(size, (pale, pale), t.device)), x


def crossformer_cases(size, dims=96, heads=3, group=7, interval=8, long_distance=False, version=1, batch=2):
    from mmvit_backbones.models.backbones import crossformer
    ref = load_reference('crossformer_reference')
    x = torch.randn(batch, size[0], size[1], dims)
    args = (dims, heads, group, interval, long_distance, version)
    old = ref.CrossFormerBlock(*args)
    new = crossformer.CrossFormerBlock(*args)
    yield 'before', old, lambda t: old(t), x
    # As the stage does: the layout once, shared by the blocks of its kind.
    yield 'after', new, lambda t: new(t, new.attn.layout(size, t.device)), x


def measure(block, call, x, bf16: bool, repeats: int = 5):
    device = x.device.type
    block.train()

    def step():
        block.zero_grad(set_to_none=True)  # as a training loop does: no gradient accumulation kernels
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            out = call(x.clone().requires_grad_())
        out.float().sum().backward()

    def sync():
        if device == 'cuda':
            torch.cuda.synchronize()

    for _ in range(3):
        step()  # warm caches and cuDNN's algorithm choice
    counts = count_ops(step)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    sync()
    return counts, (time.perf_counter() - start) / repeats * 1e3


#: (batch, stage-1 map) per geometry: 'tiny' times host overhead on CPU (the work is negligible),
#: 'cpu' a small real size; cls / dense are the GPU benchmark's stage 1.
GEOMETRIES = {
    'tiny': (1, (14, 14), (13, 19)),
    'cpu': (2, (56, 56), (50, 76)),
    'cls': (64, (56, 56), (56, 56)),
    'dense': (2, (200, 304), (200, 304)),
}


def build_cases(geometry: str):
    batch, square, dense = GEOMETRIES[geometry]
    return {
        f'Pale-T stage 1 block, {batch}x{square[0]}x{square[1]} (one SDPA call)':
        lambda: pale_cases(square, batch=batch),
        f'Pale-T stage 1 block, {batch}x{dense[0]}x{dense[1]} (padded, two calls)':
        lambda: pale_cases(dense, batch=batch),
        f'CrossFormer-S stage 1 SDA block, {batch}x{square[0]}x{square[1]}':
        lambda: crossformer_cases(square, batch=batch),
        f'CrossFormer-S stage 1 LDA v1 block, {batch}x{dense[0]}x{dense[1]}':
        lambda: crossformer_cases(dense, long_distance=True, batch=batch),
        f'CrossFormer-S stage 1 SDA block, {batch}x{dense[0]}x{dense[1]}':
        lambda: crossformer_cases(dense, batch=batch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--json', help='write the table here')
    parser.add_argument('--top', type=int, default=0, help='also print the N most frequent ops of each case')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--geometry', nargs='+', default=['cpu'], choices=sorted(GEOMETRIES))
    parser.add_argument('--repeats', type=int, default=20)
    args = parser.parse_args()
    count_triton_launches()
    torch.manual_seed(0)
    if args.device == 'cpu':
        torch.set_num_threads(1)
    rows = []
    print(f'device {args.device}, torch {torch.__version__}')
    print('| block | impl | ops fp32 (kernels) | ops bf16 autocast (kernels, casts) | ms fp32 / bf16 |')
    print('|---|---|---|---|---|')
    for geometry in args.geometry:
        for name, make in build_cases(geometry).items():
            for impl, block, call, x in make():
                block.to(args.device)
                x = x.to(args.device)
                fp32, ms32 = measure(block, call, x, bf16=False, repeats=args.repeats)
                bf16, ms16 = measure(block, call, x, bf16=True, repeats=args.repeats)
                row = dict(block=name, impl=impl, device=args.device, ops_fp32=sum(fp32.values()),
                           kernels_fp32=kernel_ops(fp32), ops_bf16=sum(bf16.values()), kernels_bf16=kernel_ops(bf16),
                           ms_fp32=ms32, ms_bf16=ms16, casts_bf16=bf16.get('_to_copy', 0),
                           top_bf16=dict(bf16.most_common(args.top or 12)))
                rows.append(row)
                print(f"| {name} | {impl} | {row['ops_fp32']} ({row['kernels_fp32']}) | {row['ops_bf16']} "
                      f"({row['kernels_bf16']}, {row['casts_bf16']}) | {ms32:.2f} / {ms16:.2f} |", flush=True)
                if args.top:
                    print('    ', dict(bf16.most_common(args.top)))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(torch=torch.__version__, rows=rows), indent=1))


if __name__ == '__main__':
    main()
