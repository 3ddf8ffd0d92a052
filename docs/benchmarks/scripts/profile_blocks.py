"""Where a backbone's training step goes: kernels per block, host vs device time, the most expensive device ops.

    python docs/benchmarks/scripts/profile_blocks.py PaleTransformer:t --geometry dense --precision bf16 \
        --out pale-t_dense_bf16.json

For one backbone (``Type:arch`` of this plugin, or a config; see
``tools/analysis_tools/benchmark_backbone.py``), geometry (``cls``: 64x224,
``dense``: 2x800x1216) and precision, a training step (forward, backward of
the mean of the outputs):

* **per block** (the backbone's :meth:`blocks`, grouped by class and stage):
  operator calls and kernel launches in forward and in backward, from
  ``torch.profiler`` ranges that module hooks open and close around each
  block, in a second profiled run (the hooks add autograd nodes of their own;
  the times and top ops come from a run without them) (kernel launches are the CUDA runtime's launch calls; on CPU only
  operator calls are counted);
* **host vs device** per step: eager wall time, the summed duration of the
  device kernels (CUDA), and the replay time of the step captured in a CUDA
  graph (``--no-graph`` skips it), i.e. the step without host overhead;
* **top device ops** (self device time; self CPU time on CPU), in eager mode
  and, on CUDA, under the CUDA graph.

Writes JSON (``--out``) and prints a short text table. Runs on CPU too
(``--device cpu``, small ``--batch-size`` / ``--size`` / ``--options``).
"""
import argparse
import json
import statistics
import time
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from mmvit_backbones.benchmark import backbone as bench

LAUNCHES = ('cudaLaunchKernel', 'cudaLaunchKernelExC', 'cuLaunchKernel', 'cuLaunchKernelEx',
            'cudaLaunchCooperativeKernel')
RANGE_PREFIX = 'block::'


class BlockRanges:
    """Profiler ranges around each block's forward and backward, opened and closed by module hooks."""

    def __init__(self, blocks: Dict[str, nn.Module]) -> None:
        self.handles = []
        for name, block in blocks.items():
            self.handles += [
                block.register_forward_pre_hook(self._open(f'{RANGE_PREFIX}fwd::{name}')),
                block.register_forward_hook(self._close(f'{RANGE_PREFIX}fwd::{name}')),
                block.register_full_backward_pre_hook(self._open(f'{RANGE_PREFIX}bwd::{name}')),
                block.register_full_backward_hook(self._close(f'{RANGE_PREFIX}bwd::{name}')),
            ]
        self.open_ranges: Dict[str, record_function] = {}

    def _open(self, label: str):
        def hook(*args):
            scope = record_function(label)
            scope.__enter__()
            self.open_ranges[label] = scope
        return hook

    def _close(self, label: str):
        def hook(*args):
            scope = self.open_ranges.pop(label, None)
            if scope is not None:
                scope.__exit__(None, None, None)
        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def named_blocks(model: nn.Module) -> Dict[str, nn.Module]:
    """``{'<path>:<Class>[<attention class>]': block}`` from the backbone's ``blocks()``."""
    names = {id(m): n for n, m in model.named_modules()}
    blocks = {}
    for block in model.blocks():
        kind = type(block).__name__
        attention = getattr(block, 'attn', None)
        if attention is not None:  # e.g. SG-Former's hybrid-scale and self-guided blocks share one class
            kind += f'[{type(attention).__name__}]'
        blocks[f'{names[id(block)]}:{kind}'] = block
    return blocks


def block_group(label: str) -> str:
    """Class and stage of a block label: ``layers.2.blocks.3:CrossFormerBlock`` -> ``CrossFormerBlock@layers.2``."""
    path, cls = label.rsplit(':', 1)
    parts = path.split('.')
    stage = '.'.join(parts[:2]) if len(parts) > 2 else parts[0]
    return f'{cls}@{stage}'


def is_operator_call(event) -> bool:
    """An ATen operator called from Python or autograd, not one nested in another operator."""
    parent = event.cpu_parent
    return event.name.startswith('aten::') and (parent is None or not parent.name.startswith('aten::'))


def count_per_block(events, iters: int) -> Dict[str, Dict]:
    """Operator calls and kernel launches inside each block range, per step and per block of a group."""
    ranges = [e for e in events if e.name.startswith(RANGE_PREFIX)]
    starts = dict(ops=defaultdict(list), kernels=defaultdict(list))
    for e in events:
        if e.name in LAUNCHES:
            starts['kernels'][e.thread].append(e.time_range.start)
        elif is_operator_call(e):
            starts['ops'][e.thread].append(e.time_range.start)
    totals: Dict[str, Dict[str, float]] = defaultdict(lambda: defaultdict(float))
    members: Dict[str, set] = defaultdict(set)
    for r in ranges:
        _, direction, label = r.name.split('::', 2)
        group = block_group(label)
        members[group].add(label)
        start, end = r.time_range.start, r.time_range.end
        for kind, by_thread in starts.items():
            totals[group][f'{direction}_{kind}'] += sum(start <= t <= end for t in by_thread[r.thread])
    return {group: dict(blocks=len(members[group]),
                        **{k: round(v / iters / len(members[group]), 1) for k, v in values.items()})
            for group, values in totals.items()}


def top_ops(prof, cuda: bool, iters: int, limit: int) -> List[Dict]:
    key = 'self_device_time_total' if cuda else 'self_cpu_time_total'
    rows = [e for e in prof.key_averages() if getattr(e, key) > 0 and not e.key.startswith(RANGE_PREFIX)]
    rows.sort(key=lambda e: getattr(e, key), reverse=True)
    return [dict(name=e.key[:120], calls_per_step=round(e.count / iters, 1),
                 ms_per_step=round(getattr(e, key) / 1e3 / iters, 3)) for e in rows[:limit]]


def device_ms_per_step(prof, iters: int) -> float:
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    return round(sum(e.device_time for e in kernels) / 1e3 / iters, 3)


def profile_backbone(spec: str, geometry: str, precision: str, batch_size: Optional[int] = None,
                     size: Optional[Sequence[int]] = None, device: str = 'cuda', iters: int = 3, warmup: int = 3,
                     cuda_graph: bool = True, options: Optional[dict] = None, top: int = 15) -> Dict:
    """The profile of one backbone at one geometry and precision (see the module docstring)."""
    device = torch.device(device)
    cuda = device.type == 'cuda'
    batch_size = batch_size or bench.GEOMETRIES[geometry]['batch_size']
    size = bench.parse_size(size) or bench.GEOMETRIES[geometry]['size']
    model = bench.build_model(spec, geometry, size, options).to(device).train()
    x = torch.randn(batch_size, 3, *size, device=device)
    step = bench.make_step(model, 'train', precision, device)
    for _ in range(warmup):
        step(x)
    if cuda:
        torch.cuda.synchronize()

    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step(x)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    report = dict(model=spec, geometry=geometry, precision=precision, batch_size=batch_size, size=list(size),
                  iters=iters, eager_step_ms=round(1e3 * statistics.median(times), 3))

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:  # without block hooks: their autograd nodes would show
        for _ in range(iters):
            step(x)
        if cuda:
            torch.cuda.synchronize()
    events = prof.events()
    report['ops_per_step'] = round(sum(map(is_operator_call, events)) / iters, 1)
    report['kernel_launches_per_step'] = round(sum(e.name in LAUNCHES for e in events) / iters, 1)
    report['device_kernel_ms_per_step'] = device_ms_per_step(prof, iters) if cuda else None
    report['top_ops_eager'] = top_ops(prof, cuda, iters, top)

    ranges = BlockRanges(named_blocks(model))
    try:
        with profile(activities=activities) as block_prof:
            for _ in range(iters):
                step(x)
            if cuda:
                torch.cuda.synchronize()
    finally:
        ranges.remove()
    report['per_block'] = count_per_block(block_prof.events(), iters)

    if cuda and cuda_graph:
        replay = bench.capture_step(model, 'train', precision, device, x)
        for _ in range(warmup):
            replay(x)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            replay(x)
        end.record()
        torch.cuda.synchronize()
        report['graph_step_ms'] = round(start.elapsed_time(end) / iters, 3)
        with profile(activities=activities) as graph_prof:
            for _ in range(iters):
                replay(x)
            torch.cuda.synchronize()
        report['top_ops_graph'] = top_ops(graph_prof, True, iters, top)
    return report


def format_report(report: Dict) -> str:
    lines = [f"{report['model']} {report['geometry']} {report['precision']} (batch {report['batch_size']} x "
             f"{report['size'][0]}x{report['size'][1]}): eager step {report['eager_step_ms']} ms, device kernels "
             f"{report['device_kernel_ms_per_step']} ms, CUDA graph {report.get('graph_step_ms')} ms; "
             f"{report['ops_per_step']} ops and {report['kernel_launches_per_step']} kernel launches per step",
             '| block (class@stage) | blocks | fwd ops | fwd kernels | bwd ops | bwd kernels |',
             '|---|---|---|---|---|---|']
    for group, c in report['per_block'].items():
        lines.append(f"| {group} | {c['blocks']} | {c.get('fwd_ops', '')} | {c.get('fwd_kernels', '')} "
                     f"| {c.get('bwd_ops', '')} | {c.get('bwd_kernels', '')} |")
    lines += ['', '| top op (eager) | calls/step | ms/step |', '|---|---|---|']
    lines += [f"| {op['name']} | {op['calls_per_step']} | {op['ms_per_step']} |" for op in report['top_ops_eager'][:10]]
    return '\n'.join(lines)


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='+', help='Type:arch of this plugin, or a config file')
    parser.add_argument('--geometry', nargs='+', choices=sorted(bench.GEOMETRIES), default=['cls', 'dense'])
    parser.add_argument('--precision', nargs='+', choices=['fp32', 'bf16'], default=['bf16'])
    parser.add_argument('--batch-size', type=int)
    parser.add_argument('--size', type=int, nargs='+')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--no-graph', action='store_true', help='skip the CUDA-graph replay')
    parser.add_argument('--options', nargs='+', default=[], metavar='KEY=VALUE')
    parser.add_argument('--out', help='JSON with every profile')
    args = parser.parse_args(argv)
    results = dict(environment=bench.environment(torch.device(args.device)), profiles=[])
    for spec in args.models:
        for geometry in args.geometry:
            for precision in args.precision:
                report = profile_backbone(spec, geometry, precision, args.batch_size, args.size, args.device,
                                          args.iters, args.warmup, not args.no_graph,
                                          bench.parse_options(args.options))
                results['profiles'].append(report)
                print(format_report(report) + '\n', flush=True)
                if args.out:
                    with open(args.out, 'w') as f:
                        json.dump(results, f, indent=1)
    return results


if __name__ == '__main__':
    main()
