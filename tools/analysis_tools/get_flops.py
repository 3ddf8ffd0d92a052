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
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.model import revert_sync_batchnorm
from torch import nn

from mmvit_backbones.runtime import build_model_from_config

#: Input size (H, W) the papers state their FLOPs at, by the config's default scope.
DEFAULT_SHAPES = {'mmdet': (800, 1280), 'mmseg': (512, 2048), 'mmpretrain': (224, 224)}


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` as mmengine's Runner does, under the config's default scope.

    Synchronised BatchNorm becomes plain BatchNorm, so that no process group is needed.
    """
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:  # mmpretrain keeps it at the top level
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    return revert_sync_batchnorm(build_model_from_config(cfg, model_cfg))


class DetectorTensorMode(nn.Module):
    """``detector._forward`` with fixed image metadata, so that a tracer can call it with the image alone."""

    def __init__(self, detector: nn.Module, image_size: Tuple[int, int]) -> None:
        super().__init__()
        from mmdet.structures import DetDataSample
        self.detector = detector
        self.data_samples = [
            DetDataSample(
                metainfo=dict(img_shape=image_size, ori_shape=image_size, pad_shape=image_size,
                              batch_input_shape=image_size, scale_factor=(1.0, 1.0)))
        ]

    def forward(self, inputs: torch.Tensor):
        return self.detector._forward(inputs, self.data_samples)


def padded_shape(model: nn.Module, shape: Sequence[int]) -> Tuple[int, int]:
    """The (H, W) the model sees after its data preprocessor pads an ``H x W`` image."""
    preprocessor = getattr(model, 'data_preprocessor', None)
    divisor = getattr(preprocessor, 'pad_size_divisor', None) or 1
    return tuple(int(math.ceil(size / divisor) * divisor) for size in shape)


def config_complexity(cfg: Config, shape: Optional[Sequence[int]] = None, device: str = 'cpu') -> Dict:
    """Parameters and FLOPs (MACs) of the model of ``cfg`` for one ``H x W`` image.

    Args:
        cfg (Config): A config of mmdet, mmseg or mmpretrain.
        shape (Sequence[int], optional): ``(H, W)`` of the image; defaults to
            the size the papers count at for the config's library
            (:data:`DEFAULT_SHAPES`). Detectors pad it to their size divisor.
        device (str): Where to run the model.

    Returns:
        dict: ``params`` (int), ``flops`` (int, MACs), ``input_shape`` ((H, W)
        the model ran at) and ``unsupported_ops`` (ops the counter skipped).
    """
    from mmvit_backbones.analysis import get_flops

    scope = cfg.get('default_scope')
    if shape is None:
        if scope not in DEFAULT_SHAPES:
            raise ValueError(f'no default input shape for default_scope {scope!r}; pass --shape H W')
        shape = DEFAULT_SHAPES[scope]
    if len(shape) != 2 or not all(isinstance(size, int) and size > 0 for size in shape):
        raise ValueError(f'shape must be two positive ints (H, W), got {shape!r}')
    model = build_model(cfg).to(device).eval()
    input_shape = padded_shape(model, shape)
    if scope == 'mmdet':
        model = DetectorTensorMode(model, input_shape)
    result = get_flops(model, (3, *input_shape))
    return dict(params=result['params'], flops=result['flops'], input_shape=input_shape,
                unsupported_ops=result['unsupported_ops'])


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
