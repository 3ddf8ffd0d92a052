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
"""
from typing import Any, Dict, List, Sequence

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape
from torch import nn

__all__ = ['get_flops', 'sdpa_flop_jit']


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
