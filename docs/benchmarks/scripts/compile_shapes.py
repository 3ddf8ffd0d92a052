"""Compile time and recompiles of ``compile=True`` (per-block torch.compile) over a COCO 1x schedule's batch shapes.

    python docs/benchmarks/scripts/compile_shapes.py PaleTransformer:t CrossFormer:s SGFormer:s \
        --steps 40 --out compile_shapes.json

For each backbone: a training step (bf16 autocast forward, backward of the
mean of the outputs) on batches of 2 whose shapes follow mmdet's 1x COCO
pipeline: image sizes drawn from typical COCO sizes (most are 640 pixels on the
long side, 4:3 or 3:2, landscape or portrait), ``Resize((1333, 800),
keep_ratio=True)``, images of one orientation per batch (``AspectRatioBatchSampler``),
padded to a multiple of 32. Each step records its wall time, the shape and
how many graphs dynamo compiled so far (``unique_graphs``): graphs compiled
after the first step are recompiles for new shapes;
the same shapes then run eagerly for the time without compiling. Also runs on
CPU with ``--device cpu --backend eager`` and tiny archs (``--options``).
"""
import argparse
import json
import random
import time
from typing import Dict, List, Sequence, Tuple

import torch
from torch._dynamo.utils import counters

from mmvit_backbones.benchmark.backbone import build_model, environment, parse_options

# (height, width) of typical COCO images with rough weights (most COCO images are 640 on the long side).
COCO_SIZES = [((480, 640), 45), ((427, 640), 15), ((640, 480), 12), ((640, 427), 8), ((426, 640), 6),
              ((360, 640), 4), ((375, 500), 4), ((612, 612), 3), ((640, 640), 3)]


def resized(size: Tuple[int, int], scale: Tuple[int, int] = (1333, 800)) -> Tuple[int, int]:
    """mmcv's keep-ratio rescale of (h, w) to fit the long and short sides of ``scale``."""
    h, w = size
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


def batch_shapes(steps: int, batch_size: int = 2, seed: int = 0) -> List[Tuple[int, int]]:
    """Padded (H, W) of ``steps`` batches as the 1x pipeline forms them."""
    rng = random.Random(seed)
    sizes, weights = zip(*COCO_SIZES)
    shapes = []
    for _ in range(steps):
        landscape = rng.random() < 0.75
        pool = [(s, w) for s, w in zip(sizes, weights) if (s[1] >= s[0]) == landscape]
        images = [resized(rng.choices([s for s, _ in pool], [w for _, w in pool])[0]) for _ in range(batch_size)]
        h, w = max(i[0] for i in images), max(i[1] for i in images)
        shapes.append((-(-h // 32) * 32, -(-w // 32) * 32))
    return shapes


def run(model: torch.nn.Module, shapes: Sequence[Tuple[int, int]], device: torch.device, bf16: bool,
        time_limit: float) -> List[Dict]:
    steps = []
    start = time.perf_counter()
    for h, w in shapes:
        x = torch.randn(2, 3, h, w, device=device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = sum(out.float().mean() for out in model(x))
        loss.backward()
        model.zero_grad(set_to_none=True)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        steps.append(dict(shape=[h, w], seconds=round(time.perf_counter() - t0, 4),
                          graphs=counters['stats']['unique_graphs']))
        if time.perf_counter() - start > time_limit:
            break
    return steps


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='+', help='Type:arch of this plugin')
    parser.add_argument('--steps', type=int, default=40)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--backend', default='inductor', help='torch.compile backend')
    parser.add_argument('--fp32', action='store_true', help='no bf16 autocast')
    parser.add_argument('--time-limit', type=float, default=150, help='seconds per model and mode')
    parser.add_argument('--options', nargs='+', default=[], metavar='KEY=VALUE', help='constructor arguments')
    parser.add_argument('--out')
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    shapes = batch_shapes(args.steps)
    report = dict(environment=environment(device), shapes=[list(s) for s in shapes],
                  distinct_shapes=len(set(shapes)), backend=args.backend, bf16=not args.fp32, models=[])
    for spec in args.models:
        entry = dict(name=spec)
        for mode in ('compiled', 'eager'):
            options = dict(parse_options(args.options))
            if mode == 'compiled':
                options['compile'] = dict(backend=args.backend)
            torch.manual_seed(0)
            model = build_model(spec, 'dense', shapes[0], options).to(device).train()
            torch._dynamo.reset()
            counters.clear()
            try:
                steps = run(model, shapes, device, not args.fp32, args.time_limit)
            except Exception as error:  # reported, the next model still runs
                entry[mode] = dict(error=f'{type(error).__name__}: {str(error)[:300]}')
                continue
            later = [s['seconds'] for s in steps[len(steps) // 2:]]
            entry[mode] = dict(steps=steps, first_step_seconds=steps[0]['seconds'],
                               total_seconds=round(sum(s['seconds'] for s in steps), 2),
                               median_second_half_seconds=round(sorted(later)[len(later) // 2], 4),
                               graphs_first_step=steps[0]['graphs'],
                               graphs_compiled_later=steps[-1]['graphs'] - steps[0]['graphs'],
                               graph_breaks=sum(counters['graph_break'].values()))
            print(json.dumps(dict(model=spec, mode=mode, **{k: v for k, v in entry[mode].items() if k != 'steps'})),
                  flush=True)
            del model
            if device.type == 'cuda':
                torch.cuda.empty_cache()
        report['models'].append(entry)
        if args.out:
            with open(args.out, 'w') as f:
                json.dump(report, f, indent=1)
    return report


if __name__ == '__main__':
    main()
