"""Small building blocks shared by the backbones."""
import functools
from typing import Any, Callable, Optional, Tuple, Union

import torch
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath
from torch import nn

__all__ = ['DropPath', 'Mlp', 'nlc_to_nchw', 'nchw_to_nlc', 'maybe_checkpoint', 'drop_path_rates',
           'check_checkpoint_mode']


class Mlp(nn.Module):
    """Linear, activation, Linear (the transformer FFN). Keys ``fc1`` / ``fc2``."""

    def __init__(self, in_features: int, hidden_features: int, out_features: Optional[int] = None,
                 act_layer: Callable[[], nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def nlc_to_nchw(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """``(B, H·W, C)`` tokens (row-major) to a ``(B, C, H, W)`` map."""
    b, n, c = x.shape
    h, w = size
    if n != h * w:
        raise ValueError(f'{n} tokens do not form a {h}x{w} map')
    return x.transpose(1, 2).reshape(b, c, h, w)


def nchw_to_nlc(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` map to ``(B, H·W, C)`` tokens (row-major)."""
    return x.flatten(2).transpose(1, 2)


def _selective_saved_ops() -> frozenset:
    aten = torch.ops.aten
    names = ('mm', 'addmm', 'bmm', 'baddbmm', 'convolution', '_scaled_dot_product_flash_attention',
             '_scaled_dot_product_flash_attention_for_cpu', '_scaled_dot_product_efficient_attention',
             '_scaled_dot_product_cudnn_attention')
    return frozenset(getattr(aten, name).default for name in names if hasattr(aten, name))


_SELECTIVE_SAVED_OPS = _selective_saved_ops()


def _save_matmul_outputs(ctx, op, *args, **kwargs) -> cp.CheckpointPolicy:
    # Matrix products, convolutions and attention kernels keep their outputs;
    # norms, activations, copies and casts are recomputed in backward: most of
    # the memory for a few cheap elementwise kernels.
    if op in _SELECTIVE_SAVED_OPS:
        return cp.CheckpointPolicy.MUST_SAVE
    return cp.CheckpointPolicy.PREFER_RECOMPUTE


def check_checkpoint_mode(with_cp: Union[bool, str], owner: str) -> Union[bool, str]:
    """Validate a ``with_cp`` argument: ``False``, ``True`` or ``'selective'``."""
    if not (isinstance(with_cp, bool) or with_cp == 'selective'):
        raise ValueError(f"{owner}: with_cp must be False, True or 'selective', got {with_cp!r}")
    return with_cp


def maybe_checkpoint(fn: Callable, *args, with_cp: Union[bool, str]) -> Any:
    """Run ``fn(*args)`` under the activation checkpointing ``with_cp`` names.

    ``False`` runs it as is; ``True`` keeps only the inputs and recomputes the
    whole of ``fn`` in backward; ``'selective'`` keeps the outputs of matrix
    products, convolutions and attention and recomputes the rest (norms,
    activations, layout copies, casts). Its policy runs as a Python dispatch
    mode over every op, which slows a host-bound eager step; under CUDA graphs
    or ``torch.compile`` that cost is gone (measurements:
    ``docs/benchmarks/README.md``, "Levers"). Non-reentrant checkpointing works with DDP, unused
    parameters and inputs that do not require grad. Without autograd
    (inference, ``no_grad``) there is nothing to save and ``fn`` runs as is.
    """
    if not with_cp or not torch.is_grad_enabled():
        return fn(*args)
    if with_cp == 'selective':
        context_fn = functools.partial(cp.create_selective_checkpoint_contexts, _save_matmul_outputs)
        return cp.checkpoint(fn, *args, use_reentrant=False, context_fn=context_fn)
    return cp.checkpoint(fn, *args, use_reentrant=False)


def drop_path_rates(rate: float, depths) -> list:
    """Stochastic depth per block: ``linspace(0, rate, sum(depths))`` split by stage."""
    # An explicit CPU device keeps this working inside ``with torch.device('meta'):``.
    rates = torch.linspace(0, rate, sum(depths), device='cpu').tolist()
    out, start = [], 0
    for depth in depths:
        out.append(rates[start:start + depth])
        start += depth
    return out
