"""FLOP and parameter counting for the models of this plugin.

:func:`get_flops` is mmengine's :class:`~mmengine.analysis.FlopAnalyzer` (the
fvcore jit counter) with one handle added: the default counter skips
``aten::scaled_dot_product_attention``, the op every attention of this plugin
runs on its fast path, so attention would be missing from the totals.

Convention (fvcore's, and the papers'): a FLOP is one multiply-accumulate.
Convolutions, linear layers and matrix products count their MACs; norms count
fvcore's rough per-element estimate; other element-wise ops (softmax, scaling,
adding a mask or bias, activations) are not counted. A scaled dot-product
attention counts the two products ``q·kᵀ`` and ``probs·v`` over the full
``Nq × Nk`` matrix (a causal or padding mask does not reduce it):
``batch · heads · Nq · Nk · (d_qk + d_v)``. This equals what the counter finds
for the plain path (two ``matmul``), so both paths report the same figure.

:func:`config_complexity` counts the whole model a config builds (used by
``tools/analysis_tools/get_flops.py`` and ``generate_model_zoo.py``).
"""
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from torch import nn

from .runtime import build_model_from_config

__all__ = ['get_flops', 'sdpa_flop_jit', 'config_complexity', 'build_model', 'DEFAULT_SHAPES']


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """MACs of ``aten::scaled_dot_product_attention`` (a FlopAnalyzer handle).

    q is ``(..., Nq, d_qk)``, k ``(..., Nk, d_qk)`` and the output
    ``(..., Nq, d_v)`` with the broadcast batch shape (heads included).
    """
    q_shape, k_shape = get_shape(inputs[0]), get_shape(inputs[1])
    out_shape = get_shape(outputs[0])
    batch = 1
    for size in out_shape[:-2]:
        batch *= size
    num_queries, num_keys = q_shape[-2], k_shape[-2]
    return batch * num_queries * num_keys * (q_shape[-1] + out_shape[-1])


def get_flops(model: nn.Module, input_shape: Sequence[int] = (3, 224, 224)) -> Dict[str, Any]:
    """Count the FLOPs (MACs) and parameters of ``model`` for one input.

    The model runs once in eval mode (restored afterwards) under
    ``torch.no_grad`` on a random input of ``input_shape`` placed on the
    model's device and dtype. ``model(inputs)`` must return tensors: pass a
    backbone, or a detector / segmentor / classifier whose plain call runs
    ``mode='tensor'`` (the OpenMMLab default).

    Args:
        model (nn.Module): The model to analyse.
        input_shape (Sequence[int]): ``(C, H, W)`` (batch 1 is added) or
            ``(N, C, H, W)``.

    Returns:
        dict: ``flops`` (int, MACs for the whole batch), ``params`` (int, all
        parameters) and ``unsupported_ops`` (dict of op name to call count for
        ops the counter ignored: check it when a model adds new op types).

    Example:
        >>> from mmvit_backbones.analysis import get_flops
        >>> result = get_flops(model, (3, 224, 224))
        >>> print(f"{result['flops'] / 1e9:.2f} GFLOPs, {result['params'] / 1e6:.2f} M params")
    """
    input_shape = tuple(input_shape)
    if len(input_shape) == 3:
        input_shape = (1, ) + input_shape
    if len(input_shape) != 4 or not all(isinstance(s, int) and s > 0 for s in input_shape):
        raise ValueError(f'input_shape must be (C, H, W) or (N, C, H, W) positive ints, got {input_shape}')
    reference = next(model.parameters(), None)
    inputs = torch.rand(
        input_shape,
        device=reference.device if reference is not None else None,
        dtype=reference.dtype if reference is not None else None)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            analyzer = FlopAnalyzer(model, inputs)
            analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            flops = analyzer.total()
            unsupported = dict(analyzer.unsupported_ops())
    finally:
        model.train(was_training)
    return dict(flops=flops, params=sum(p.numel() for p in model.parameters()), unsupported_ops=unsupported)


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
