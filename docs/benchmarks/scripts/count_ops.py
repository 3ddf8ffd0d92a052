"""Host-overhead proxy without a GPU: the aten ops one forward + backward dispatches, on CPU.

    # a whole backbone and, for SG-Former, the first block of each kind as the model feeds it
    python docs/benchmarks/scripts/count_ops.py SGFormer:s --size 224 224 [--batch 1] [--top N] [--json F]
    # Pale / CrossFormer stage-1 blocks: the former implementation (tests/reference/) vs the current one
    python docs/benchmarks/scripts/count_ops.py [--geometry tiny cpu] [--top N] [--json F]
    # the same blocks on the GPU at the stage-1 sizes of the two benchmark geometries, eager ms per fwd+bwd
    python docs/benchmarks/scripts/count_ops.py --device cuda --geometry cls dense --json blocks.json

In eager mode on a GPU every dispatched aten op costs host time (a few microseconds) whatever its size, so
on a host-bound step the op count is what the host pays. Counted with a ``TorchDispatchMode`` (below
autograd and autocast: backward ops and autocast's casts count), in fp32 and under
``torch.autocast(device, dtype=torch.bfloat16)``. CUDA dispatches the same aten ops as the CPU except for
backend choices inside SDPA and convolutions, so the counts track but do not equal CUDA kernel counts.

Whole model (``MODEL`` given, ``Type:arch``): "not views" leaves out the ops that only re-view storage;
``model`` is the whole backbone, with its CPU wall time (median of 5 steps after one warm-up; ``--no-time``
skips it); "saved for backward": the bytes of the unique storages autograd saves in the forward
(``saved_tensors_hooks``), the activation memory of a training step. Blocks (no
``MODEL``): "kernels" also leaves out allocations and metadata queries; parameter gradients are set to
None before each step, as a training loop does. With ``TRITON_INTERPRET=1`` CrossFormer's DPB runs its
Triton kernels (interpreted on CPU); each launch counts as one op, the interpreter's own tensor traffic not.
"""
import argparse
import collections
import importlib
import json
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Callable, Counter, Dict, List, Optional, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import mmvit_backbones.models.backbones as backbones

ROOT = Path(__file__).resolve().parents[3]

#: Ops that only make a new view of existing storage: dispatched (host time) but no device kernel.
VIEW_OPS = frozenset({
    'view', '_unsafe_view', '_reshape_alias', 't', 'transpose', 'permute', 'expand', 'detach', 'slice', 'select',
    'unsqueeze', 'squeeze', 'alias', 'as_strided', 'split', 'split_with_sizes', 'unbind', 'unflatten', 'flatten',
    'reshape', 'chunk', 'narrow', 'diagonal', 'view_as', 'lift_fresh'
})
#: Views, allocations and metadata queries: ops that launch no kernel.
NO_KERNEL_OPS = VIEW_OPS | frozenset({
    'empty', 'empty_strided', 'empty_like', 'new_empty', 'new_empty_strided', 'lift_fresh_copy', 'is_same_size',
    'sym_size', 'sym_stride', 'sym_numel', 'sym_storage_offset', 'numel', 'size', 'stride'
})


class OpCounter(TorchDispatchMode):
    """Counts the aten ops dispatched inside the ``with`` block, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = collections.Counter()
        self.paused = 0  # inside an interpreted Triton launch: its tensor traffic is not the kernel's

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self.paused:
            self.counts[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))


_COUNTERS: List[OpCounter] = []


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


def count_ops(fn: Callable[[], None]) -> Counter[str]:
    """Aten ops dispatched while ``fn()`` runs (forward and backward if it calls backward)."""
    with OpCounter() as counter:
        _COUNTERS.append(counter)
        try:
            fn()
        finally:
            _COUNTERS.pop()
    return counter.counts


def kernel_ops(counts: Counter[str], excluded: frozenset = NO_KERNEL_OPS) -> int:
    """Ops that do work: those not in ``excluded``."""
    return sum(n for name, n in counts.items() if name not in excluded)


# ----------------------------------------------------------------------------
# A whole backbone (and SG-Former's blocks as the model feeds them)
# ----------------------------------------------------------------------------
def _loss(result) -> torch.Tensor:
    outs = result[0] if isinstance(result, tuple) and isinstance(result[0], torch.Tensor) else result
    if isinstance(outs, torch.Tensor):
        outs = [outs]
    return sum(o.float().square().mean() for o in outs)


def count_step(fn, inputs: List[torch.Tensor], bf16: bool) -> Counter[str]:
    """Ops of ``fn(*inputs)`` then backward of a scalar loss of its outputs."""

    def step():
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            result = fn(*inputs)
        _loss(result).backward()

    return count_ops(step)


def saved_bytes(fn, inputs: List[torch.Tensor], bf16: bool) -> int:
    """Bytes autograd saves for backward in ``fn(*inputs)``: the unique storages' sizes (activation memory)."""
    storages = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            result = fn(*inputs)
    _loss(result).backward()
    return sum(storages.values())


def sgformer_block_inputs(model: torch.nn.Module, x: torch.Tensor) -> Dict[str, Tuple]:
    """For an SGFormer: ``name -> (block, tokens, size, significance)`` as the model feeds them."""
    found = {}
    with torch.no_grad():
        tokens, size = model.patch_embed1(x)
        tokens = tokens + model._pos_embed_at(size)
        significance = None
        for i in range(4):
            if i:
                feature_map = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *size)
                tokens, size = getattr(model, f'patch_embed{i + 1}')(feature_map)
                significance = None  # each stage's first block makes its own
            for block in getattr(model, f'block{i + 1}'):
                kind = {'HybridScaleAttention': 'hybrid', 'SelfGuidedAttention': 'guided',
                        'GlobalAttention': 'global'}[type(block.attn).__name__]
                if kind not in found:
                    found[kind] = (block, tokens.clone(), size, significance)
                tokens, new = block(tokens, size, significance)
                significance = new if new is not None else significance
            tokens = getattr(model, f'norm{i + 1}')(tokens)
    return found


def wall_time(model: torch.nn.Module, x: torch.Tensor, bf16: bool, repeats: int = 5) -> float:
    def step():
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            loss = _loss(model(x))
        loss.backward()
        model.zero_grad(set_to_none=True)

    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def count_model(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    name, arch = args.model.split(':')
    model = getattr(backbones, name)(arch=arch, drop_path_rate=0.).train()
    x = torch.randn(args.batch, 3, *args.size)
    results = {}
    entries = {}
    if name == 'SGFormer':
        for kind, (block, tokens, size, significance) in sgformer_block_inputs(model, x).items():
            tokens = tokens.requires_grad_()
            entries[kind] = (lambda b=block, s=size, g=significance: lambda t: b(t, s, g))(), [tokens]
    entries['model'] = (model, [x])
    for label, (fn, inputs) in entries.items():
        row = {}
        for precision in ('fp32', 'bf16'):
            ops = count_step(fn, inputs, precision == 'bf16')
            row[precision] = sum(ops.values())
            row[f'{precision}_kernels'] = kernel_ops(ops, VIEW_OPS)
            model.zero_grad(set_to_none=True)
            row[f'{precision}_saved_mib'] = round(saved_bytes(fn, inputs, precision == 'bf16') / 2**20, 2)
            if args.top:
                row[f'{precision}_top'] = ops.most_common(args.top)
            model.zero_grad(set_to_none=True)
        if label == 'model' and not args.no_time:
            row['ms_fp32'] = round(wall_time(model, x, False), 1)
            row['ms_bf16'] = round(wall_time(model, x, True), 1)
        results[label] = row
    print(f'{args.model} {args.batch}x{args.size[0]}x{args.size[1]}, CPU aten ops per forward + backward '
          '(all / not views)')
    for label, row in results.items():
        extra = f"  CPU {row['ms_fp32']} / {row['ms_bf16']} ms" if 'ms_fp32' in row else ''
        print(f"{label:8s} fp32 {row['fp32']:6d} / {row['fp32_kernels']:5d}  "
              f"bf16 {row['bf16']:6d} / {row['bf16_kernels']:5d}  saved for backward "
              f"{row['fp32_saved_mib']} / {row['bf16_saved_mib']} MiB{extra}")
        for precision in ('fp32', 'bf16'):
            if f'{precision}_top' in row:
                print(f'    {precision}: ' + ', '.join(f'{k} {v}' for k, v in row[f'{precision}_top']))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(model=args.model, size=args.size, batch=args.batch, results=results), f, indent=1)


# ----------------------------------------------------------------------------
# Pale / CrossFormer blocks: former (tests/reference/) vs current
# ----------------------------------------------------------------------------
def import_reference(name: str) -> types.ModuleType:
    """``tests/reference/<name>.py`` as ``mmvit_reference.<name>``, the package tests/conftest.py registers
    (an installed package may own the name ``tests``)."""
    if 'mmvit_reference' not in sys.modules:
        package = types.ModuleType('mmvit_reference')
        package.__path__ = [str(ROOT / 'tests' / 'reference')]
        sys.modules['mmvit_reference'] = package
    return importlib.import_module(f'mmvit_reference.{name}')


def pale_cases(size, dims=64, heads=2, pale=7, batch=2):
    from mmvit_backbones.models.backbones.pale_transformer import PaleBlock, PaleLayouts
    ref = import_reference('pale_reference')
    args = (dims, heads, 4., 0., dict(type='LN'), dict(type='BN'))
    x = torch.randn(batch, size[0] * size[1], dims)
    old = ref.PaleBlock(*args)
    new = PaleBlock(*args)
    # Layouts are built per call on the input's device, as each stage does once per forward.
    yield 'before', old, lambda t: old(t, ref.pale_layout(size, (pale, pale), t.device)), x
    yield 'after', new, lambda t: new(t.unflatten(1, size), PaleLayouts.build(size, (pale, pale), t.device)), x


def crossformer_cases(size, dims=96, heads=3, group=7, interval=8, long_distance=False, version=1, batch=2):
    from mmvit_backbones.models.backbones import crossformer
    ref = import_reference('crossformer_reference')
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


def count_blocks(args: argparse.Namespace) -> None:
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


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('model', nargs='?', help='Type:arch, e.g. SGFormer:s: count that whole backbone; '
                        'without it, the Pale / CrossFormer blocks before and after')
    parser.add_argument('--json', help='write the counts here')
    parser.add_argument('--top', type=int, default=0, help='also list the N most frequent ops of each entry')
    model_options = parser.add_argument_group('whole backbone (MODEL given)')
    model_options.add_argument('--size', type=int, nargs=2, default=None, help='input H W (default 224 224)')
    model_options.add_argument('--batch', type=int, default=None, help='default 1')
    model_options.add_argument('--threads', type=int, default=None, help='default 1')
    model_options.add_argument('--no-time', action='store_true', default=None, help='skip the CPU wall time')
    block_options = parser.add_argument_group('blocks (no MODEL)')
    block_options.add_argument('--device', default=None, help='default cpu')
    block_options.add_argument('--geometry', nargs='+', default=None, choices=sorted(GEOMETRIES),
                               help='default cpu')
    block_options.add_argument('--repeats', type=int, default=None, help='timed steps (default 20)')
    args = parser.parse_args(argv)
    own, other = ((('size', [224, 224]), ('batch', 1), ('threads', 1), ('no_time', False)),
                  (('device', 'cpu'), ('geometry', ['cpu']), ('repeats', 20)))
    if not args.model:
        own, other = other, own
    misplaced = [f"--{name.replace('_', '-')}" for name, _ in other if getattr(args, name) is not None]
    if misplaced:
        parser.error(f"{', '.join(misplaced)}: options of the {'block' if args.model else 'whole-backbone'} "
                     f"count, which runs {'without' if args.model else 'with'} a MODEL")
    for name, default in own:
        if getattr(args, name) is None:
            setattr(args, name, default)
    count_triton_launches()
    if args.model:
        count_model(args)
    else:
        count_blocks(args)


if __name__ == '__main__':
    main()
