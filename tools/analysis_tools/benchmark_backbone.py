"""Throughput and peak memory of backbones: inference and training, fp32 and bf16.

    python tools/analysis_tools/benchmark_backbone.py MODEL [MODEL ...] [options]

``MODEL`` is one of

* ``Type:arch``, a backbone of this plugin by registry name and arch
  (``CrossFormer:s``, ``CrossFormerPP:s``, ``SGFormer:s``, ``PaleTransformer:t``);
* a config file: its ``model.backbone`` (or ``model`` when that is a backbone
  itself) is built under the config's default scope;
* ``timm:NAME``, a timm model as a peer (e.g. ``timm:swin_tiny_patch4_window7_224``):
  the classifier at the classification geometry, ``features_only`` at the
  dense one (built for that input size).

Each model runs at each geometry (``cls``: batch 64 of 224x224; ``dense``:
batch 2 of 800x1216; batch and size can be overridden), precision (``fp32``,
``bf16`` autocast) and mode:

* ``infer``: eval mode under ``torch.inference_mode``;
* ``train``: train mode (dropout / stochastic depth / BatchNorm as in
  training), forward and backward of the mean of every output; no optimiser.

Timing: ``--warmup`` iterations, then ``--repeats`` timed runs of ``--iters``
iterations each, between CUDA events (a host clock on CPU); the table shows the
median run (images/s and ms per iteration) and the JSON has every run. Peak
memory is ``torch.cuda.max_memory_allocated`` over the timed runs (weights,
activations and gradients), on CUDA only and not with ``--cuda-graph`` (a
graph's memory pool is allocated while capturing). PyTorch's TF32 defaults hold
unless ``--tf32``: fp32 matrix products in IEEE fp32, cuDNN convolutions
allowed TF32.

``--cuda-graph`` captures each step in a CUDA graph and times its replays:
the device time of the backbone without the host overhead of eager mode
(which bounds eager throughput when the host is slower than the GPU).

``--reference`` takes a JSON of published figures (``docs/benchmarks/authors_figures.json``
shows the layout) and adds the ratio of each measurement to its figure.
``--profile DIR`` also writes a ``torch.profiler`` table of each measurement
(a few iterations after the timed ones) sorted by device time.
"""
import argparse
import gc
import json
import os.path as osp
from typing import Dict, Optional, Sequence

import torch

from mmvit_backbones.benchmark.backbone import (
    GEOMETRIES,
    MODES,
    PRECISIONS,
    build_model,
    environment,
    format_table,
    measure,
    parse_options,
    parse_size,
    reference_ratio,
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='+', help='Type:arch, a config file, or timm:NAME')
    parser.add_argument('--geometry', nargs='+', choices=sorted(GEOMETRIES), default=['cls', 'dense'])
    parser.add_argument('--precision', nargs='+', choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument('--mode', nargs='+', choices=MODES, default=list(MODES))
    parser.add_argument('--batch-size', type=int, help='override the geometry batch size')
    parser.add_argument('--size', type=int, nargs='+', help='override the geometry input size: H [W]')
    parser.add_argument('--warmup', type=int, default=5, help='untimed iterations first')
    parser.add_argument('--iters', type=int, default=10, help='iterations per timed run')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs (the median is reported)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--channels-last', action='store_true', help='channels-last weights and inputs')
    parser.add_argument('--compile', action='store_true', help='torch.compile the model (warm-up compiles)')
    parser.add_argument('--cuda-graph', action='store_true',
                        help='capture each step (forward, and backward when training) in a CUDA graph and '
                        'time its replays: the device time without the host overhead of eager mode')
    parser.add_argument('--tf32', action='store_true', help='allow TF32 matrix products for fp32')
    parser.add_argument('--options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='constructor arguments of every model, overriding the spec (values are Python '
                        "literals, e.g. \"arch={'embed_dims': 32, ...}\")")
    parser.add_argument('--reference', help='JSON of published figures to compare with')
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--profile', metavar='DIR', help='write a torch.profiler table per measurement here')
    return parser.parse_args(argv)

def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    options = parse_options(args.options)
    reference = {}
    if args.reference:
        with open(args.reference) as f:
            reference = json.load(f)
    if args.profile:
        import os
        os.makedirs(args.profile, exist_ok=True)

    report = dict(environment=environment(device),
                  settings=dict(warmup=args.warmup, iters=args.iters, repeats=args.repeats,
                                channels_last=args.channels_last, compile=args.compile,
                                cuda_graph=args.cuda_graph, options=options),
                  models=[])
    for spec in args.models:
        entry = dict(name=spec, measurements=[])
        for geometry in args.geometry:
            batch_size = args.batch_size or GEOMETRIES[geometry]['batch_size']
            size = parse_size(args.size) or GEOMETRIES[geometry]['size']
            try:
                model = build_model(spec, geometry, size, options).to(device)
            except Exception as error:  # a peer that cannot be built at this size is reported, not fatal
                entry['measurements'].append(dict(geometry=geometry, mode='-', precision='-',
                                                  error=f'build failed: {type(error).__name__}: {error}'))
                continue
            entry['params'] = sum(p.numel() for p in model.parameters())
            if args.channels_last:
                model = model.to(memory_format=torch.channels_last)
            runner = torch.compile(model) if args.compile else model
            for precision in args.precision:
                for mode in args.mode:
                    profile_path = None
                    if args.profile:
                        profile_path = osp.join(args.profile, '_'.join(
                            [spec.replace(':', '-').replace('/', '_'), geometry, mode, precision]) + '.txt')
                    try:
                        result = measure(runner, mode, precision, batch_size, size, device, args.warmup,
                                         args.iters, args.repeats, args.channels_last, args.cuda_graph,
                                         profile_path)
                    except torch.cuda.OutOfMemoryError:
                        result = dict(mode=mode, precision=precision, error='out of memory')
                    except Exception as error:  # e.g. a graph capture that fails: report it, go on
                        if not (args.cuda_graph or args.compile):
                            raise
                        result = dict(mode=mode, precision=precision,
                                      error=f'{type(error).__name__}: {str(error)[:200]}')
                    result['geometry'] = geometry
                    if 'error' not in result:
                        ratio = reference_ratio(reference, spec, geometry, result)
                        if ratio:
                            result['reference_ratio'] = ratio
                    entry['measurements'].append(result)
                    print(json.dumps(dict(model=spec, **result)), flush=True)
                    gc.collect()
                    if device.type == 'cuda':
                        torch.cuda.empty_cache()
            del model, runner
        report['models'].append(entry)

    print(format_table(report['models']))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == '__main__':
    main()
