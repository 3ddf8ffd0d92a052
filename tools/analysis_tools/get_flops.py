"""Parameters and FLOPs of the model a config builds.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W] [--device cuda]

The whole model of the config is built (detector, segmentor or classifier) and
run once on a random ``H x W`` image, in the mode its library uses for
inference without post-processing (``mode='tensor'``): a detector runs its
backbone, neck, RPN and RoI heads (1000 proposals for Mask R-CNN), a segmentor
its backbone and decode head (the auxiliary head only trains), a classifier
its backbone, neck and head. Counting is :func:`mmvit_backbones.analysis.get_flops`:
mmengine's counter plus ``scaled_dot_product_attention``, a FLOP being one
multiply-accumulate, as in the papers. Parameters are those of the whole
model, auxiliary heads included.
"""
import argparse

from mmengine.config import Config, DictAction

# The counting itself lives in the package, shared with generate_model_zoo.py.
from mmvit_backbones.analysis import DEFAULT_SHAPES, build_model, config_complexity  # noqa: F401


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Count the parameters and FLOPs of a config\'s model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input image size; default: 800 1280 (mmdet), 512 2048 (mmseg), 224 224 (mmpretrain)')
    parser.add_argument('--device', default='cpu', help='device to run the model on, e.g. cuda')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.backbone.arch=b')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    result = config_complexity(cfg, args.shape, args.device)
    height, width = result['input_shape']
    print(f'Config: {args.config}\n'
          f'Input shape: {height}x{width}\n'
          f'FLOPs (MACs): {result["flops"] / 1e9:.2f} G\n'
          f'Params: {result["params"] / 1e6:.2f} M')
    if result['unsupported_ops']:
        skipped = ', '.join(f'{op} x{count}' for op, count in sorted(result['unsupported_ops'].items()))
        print(f'Not counted (no FLOP handle): {skipped}')


if __name__ == '__main__':
    main()
