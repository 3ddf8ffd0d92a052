"""Small building blocks shared by the backbones."""
from typing import Callable, Optional, Tuple

import torch
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath
from torch import nn

__all__ = ['DropPath', 'Mlp', 'nlc_to_nchw', 'nchw_to_nlc', 'maybe_checkpoint', 'drop_path_rates']


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


def maybe_checkpoint(fn: Callable, *args, enabled: bool) -> torch.Tensor:
    """Run ``fn(*args)``, under activation checkpointing when ``enabled``.

    Non-reentrant checkpointing works with DDP, unused parameters and inputs
    that do not require grad.
    """
    if enabled:
        return cp.checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def drop_path_rates(rate: float, depths) -> list:
    """Stochastic depth per block: ``linspace(0, rate, sum(depths))`` split by stage."""
    # An explicit CPU device keeps this working inside ``with torch.device('meta'):``.
    rates = torch.linspace(0, rate, sum(depths), device='cpu').tolist()
    out, start = [], 0
    for depth in depths:
        out.append(rates[start:start + depth])
        start += depth
    return out
