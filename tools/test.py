"""Evaluate a trained detector, segmentor or classifier.

The config's ``default_scope`` (mmdet / mmseg / mmpretrain) decides which
library builds the model, datasets and metrics.
"""
import argparse
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.evaluator import DumpResults

import mmvit_backbones  # noqa: F401  (registers models, trusted local checkpoint loading)
from mmvit_backbones.runtime import LoudCheckpointHook, build_runner, end_distributed

#: Config key (set with ``--cfg-options load_strict=False``) that lets a checkpoint with missing,
#: unexpected or mis-shaped keys be tested anyway; by default such a checkpoint fails the run.
STRICT_KEY = 'load_strict'

# Visualisation hooks of the three libraries and the switches that turn them on.
VISUALIZATION_HOOKS = {
    'DetVisualizationHook': dict(draw=True, out_key='test_out_dir'),
    'SegVisualizationHook': dict(draw=True, out_key=None),
    'VisualizationHook': dict(enable=True, out_key='out_dir'),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file; every key must fit the model unless '
                        f'--cfg-options {STRICT_KEY}=False')
    parser.add_argument('--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--out', help='dump the raw predictions to this pickle file')
    parser.add_argument('--show-dir', help='draw predictions into this directory (inside the work dir)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. test_dataloader.batch_size=2')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation with the config's tta_model and tta_pipeline "
                        "(e.g. the multi-scale + flip test of the ADE20K configs)")
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args()


def enable_visualization(cfg: Config, show_dir: str) -> None:
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None or hook.get('type') not in VISUALIZATION_HOOKS:
        raise ValueError('--show-dir needs a visualization hook in default_hooks (one of '
                         f'{sorted(VISUALIZATION_HOOKS)}), got {hook!r}')
    switches = dict(VISUALIZATION_HOOKS[hook['type']])
    out_key = switches.pop('out_key')
    hook.update(switches)
    if out_key is None:  # mmseg's hook saves through the visualizer's backends
        cfg.visualizer.setdefault('save_dir', osp.join(cfg.work_dir, show_dir))
    else:
        hook[out_key] = show_dir


def enable_tta(cfg: Config) -> None:
    """Wrap the model in the config's ``tta_model`` and test with its ``tta_pipeline``."""
    missing = [key for key in ('tta_model', 'tta_pipeline') if key not in cfg]
    if missing:
        raise ValueError(f'--tta needs {" and ".join(missing)} in the config')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def apply_test_options(cfg: Config, args: argparse.Namespace) -> None:
    """Apply ``--show-dir`` and ``--tta`` to the loaded config.

    The checkpoint is not handed to mmengine's ``load_from`` (it loads with
    ``strict=False`` and only prints a note): ``main`` registers a
    :class:`LoudCheckpointHook` instead.
    """
    cfg.load_from = None
    strict = cfg.get(STRICT_KEY, True)
    if not isinstance(strict, bool):
        raise TypeError(f'{STRICT_KEY} must be True or False, got {strict!r}')
    if args.show_dir:
        enable_visualization(cfg, args.show_dir)
    if args.tta:
        enable_tta(cfg)


def main() -> None:
    args = parse_args()
    runner = build_runner(args, configure=lambda cfg: apply_test_options(cfg, args))
    runner.register_hook(LoudCheckpointHook(
        args.checkpoint, strict=runner.cfg.get(STRICT_KEY, True),
        opt_out=f'Add --cfg-options {STRICT_KEY}=False to test what fits anyway.'), priority='LOWEST')
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl or .pickle file, got {args.out!r}')
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    runner.test()
    end_distributed()


if __name__ == '__main__':
    main()
