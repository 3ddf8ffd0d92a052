"""Training speed of whole configs in mmengine's loop, one config after another.

    python tools/analysis_tools/benchmark_pipeline.py CONFIG [CONFIG ...] --amp --iters 30 --warmup 10 \
        --peer configs/benchmarks/mask-rcnn_swin-t_mmdet_1x_coco.py --out pipeline.json \
        --cfg-options model.backbone.init_cfg=None

Each config trains ``--warmup`` + ``--iters`` iterations (IterBasedTrainLoop,
no validation, no checkpoints) in its own process; the timed iterations are
the last ``--iters``. Times are mmengine's own per-iteration ``time`` (data
loading included) and ``data_time``. The JSON has, per config, mean / median
s/iter, data_time, peak memory, the backbone's input shapes, the device and
the ratio to ``--peer``; the environment (date, torch, mmengine, mmcv, mmdet,
mmseg, mmpretrain) once. The JSON is rewritten after each config. ``--cfg-options`` applies to every config (e.g. to
point them at synthetic data: see ``docs/benchmarks/scripts/h200_s3_speed.sh``).
"""
import argparse
import functools
import json
import signal
import sys

from mmengine.config import DictAction

from mmvit_backbones.benchmark import benchmark_configs, format_table


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='config files, timed in this order')
    parser.add_argument('--iters', type=int, default=30, help='timed iterations per config')
    parser.add_argument('--warmup', type=int, default=10, help='untimed iterations first')
    parser.add_argument('--amp', action='store_true', help="mmengine's AmpOptimWrapper (as tools/train.py --amp)")
    parser.add_argument('--amp-dtype', choices=['bfloat16', 'float16'], default='bfloat16')
    parser.add_argument('--peer', help='config whose mean s/iter the others are divided by (timed first if '
                        'not listed)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='overrides for every config')
    parser.add_argument('--work-dir', help='parent of the work dirs (default: a temporary directory)')
    parser.add_argument('--in-process', action='store_true',
                        help='run every config in this process instead of one subprocess each')
    parser.add_argument('--out', help='write the report as JSON here')
    return parser.parse_args(argv)


def write_json(report: dict, path: str) -> None:
    with open(path, 'w') as f:
        json.dump(report, f, indent=1)


def main(argv=None) -> dict:
    args = parse_args(argv)
    # A SIGTERM (e.g. from `timeout`) unwinds, so the running config's process is stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    report = benchmark_configs(args.configs, iters=args.iters, warmup=args.warmup, amp=args.amp,
                               amp_dtype=args.amp_dtype, cfg_options=args.cfg_options, peer=args.peer,
                               work_dir=args.work_dir, isolate=not args.in_process,
                               progress=functools.partial(write_json, path=args.out) if args.out else None)
    print(format_table(report))
    return report


if __name__ == '__main__':
    main()
