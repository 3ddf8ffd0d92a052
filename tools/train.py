"""Train a detector, segmentor or classifier from a config.

The config's ``default_scope`` (mmdet / mmseg / mmpretrain) decides which
library builds the model, datasets and metrics.
"""
import argparse
import logging

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import find_latest_checkpoint

import mmvit_backbones  # noqa: F401  (registers models, trusted local checkpoint loading)
from mmvit_backbones.runtime import build_runner, enable_amp, end_distributed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='enable automatic mixed precision training')
    parser.add_argument('--amp-dtype', choices=['bfloat16', 'float16'], default='bfloat16',
                        help='autocast dtype for --amp (bfloat16 needs no loss scaling)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual over the base batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint, or from the latest one in the work dir '
                        'when no path is given (with a warning, and from scratch, when it has none)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.backbone.drop_path_rate=0.1')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args()


def apply_train_options(cfg: Config, args: argparse.Namespace) -> None:
    """Apply ``--amp``, ``--auto-scale-lr`` and ``--resume`` to the loaded config."""
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in the config.', logger='current', level=logging.WARNING)
        enable_amp(cfg, args.amp_dtype)

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise ValueError('--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` in the config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        # mmengine would log "Auto resumed from the latest checkpoint None" and start afresh: say so plainly.
        cfg.resume = find_latest_checkpoint(cfg.work_dir) is not None
        cfg.load_from = None
        if not cfg.resume:
            print_log(f'--resume: no checkpoint to resume from in {cfg.work_dir} (no last_checkpoint file); '
                      'training starts from scratch.', logger='current', level=logging.WARNING)
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume


def main() -> None:
    args = parse_args()
    runner = build_runner(args, configure=lambda cfg: apply_train_options(cfg, args))
    runner.train()
    end_distributed()


if __name__ == '__main__':
    main()
