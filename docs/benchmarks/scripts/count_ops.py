"""Host-overhead proxy without a GPU: aten ops dispatched per block kind in one forward + backward.

    python docs/benchmarks/scripts/count_ops.py SGFormer:s --size 224 224 [--batch 1] [--json F]

In eager mode on a GPU every dispatched aten op costs host time (a few microseconds) whatever its size, so
on a host-bound step the op count is what the host pays. Counted on the CPU with a ``TorchDispatchMode``
(every op that reaches a kernel, backward included), in fp32 and under ``torch.autocast('cpu', bfloat16)``
(autocast's casts are ops too); "not views" leaves out ops that only re-view storage (no device
kernel). Per block: the first block of each kind of the first stage that has it
(``hybrid``/``guided``: stage 1, ``global``: stage 4 for SG-Former; ``first``: block1[0] otherwise), fed
the tokens it sees in the model; ``model``: the whole backbone, whose CPU wall time (median of 5 steps,
after one warm-up) is reported beside (``--no-time`` skips it). "saved for backward": the bytes of the unique
storages autograd saves in the forward (``saved_tensors_hooks``), the activation memory of a training step.
CUDA dispatches the same aten ops as the CPU except for backend
choices inside SDPA and convolutions, so the counts are CPU op counts, close to but not equal to the
number of CUDA kernels.
"""
import argparse
import json
import statistics
import time
from collections import Counter
from typing import Dict, List, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import mmvit_backbones.models.backbones as backbones

#: Ops that only make a new view of existing storage: dispatched (host time) but no device kernel.
VIEW_OPS = frozenset({'view', '_unsafe_view', 't', 'transpose', 'permute', 'expand', 'detach', 'slice', 'select',
                      'unsqueeze', 'squeeze', 'alias', 'as_strided', 'split', 'split_with_sizes', 'unbind',
                      'unflatten', 'flatten', 'reshape', 'chunk', 'narrow', 'diagonal', 'view_as', 'lift_fresh'})


class OpCounter(TorchDispatchMode):
    """Counts the aten ops dispatched inside the ``with`` block (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.ops.values())


def _loss(result) -> torch.Tensor:
    outs = result[0] if isinstance(result, tuple) and isinstance(result[0], torch.Tensor) else result
    if isinstance(outs, torch.Tensor):
        outs = [outs]
    return sum(o.float().square().mean() for o in outs)


def count_step(fn, inputs: List[torch.Tensor], bf16: bool) -> Counter:
    """Ops of ``fn(*inputs)`` then backward of a scalar loss of its outputs."""
    with OpCounter() as counter:
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            result = fn(*inputs)
        _loss(result).backward()
    return counter.ops


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


def block_inputs(model: torch.nn.Module, x: torch.Tensor) -> Dict[str, Tuple]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model', help='Type:arch, e.g. SGFormer:s')
    parser.add_argument('--size', type=int, nargs=2, default=[224, 224])
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--top', type=int, default=0, help='also list the N most frequent ops per entry')
    parser.add_argument('--json', help='write the counts here')
    parser.add_argument('--no-time', action='store_true', help='skip the CPU wall time of the model')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    name, arch = args.model.split(':')
    model = getattr(backbones, name)(arch=arch, drop_path_rate=0.).train()
    x = torch.randn(args.batch, 3, *args.size)
    results = {}
    entries = {}
    if name == 'SGFormer':
        for kind, (block, tokens, size, significance) in block_inputs(model, x).items():
            tokens = tokens.requires_grad_()
            entries[kind] = (lambda b=block, s=size, g=significance: lambda t: b(t, s, g))(), [tokens]
    entries['model'] = (model, [x])
    for label, (fn, inputs) in entries.items():
        row = {}
        for precision in ('fp32', 'bf16'):
            ops = count_step(fn, inputs, precision == 'bf16')
            row[precision] = sum(ops.values())
            row[f'{precision}_kernels'] = sum(v for k, v in ops.items() if k not in VIEW_OPS)
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


if __name__ == '__main__':
    main()
