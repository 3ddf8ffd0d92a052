"""Padding masks as the families built them before ``GroupLayout`` (issue 11): an additive key
bias grouped like the tokens by ``grid_partition``. The oracle for ``GroupLayout.key_bias`` and
what the frozen CrossFormer and Pale references mask their padded keys with.
"""
from typing import Optional, Tuple

import torch

from mmvit_backbones.models.layers import grid_partition

Pair = Tuple[int, int]


def padding_key_bias(size: Pair,
                     padded_size: Pair,
                     group: Pair,
                     interval: Pair = (1, 1),
                     value: float = float('-inf'),
                     device: Optional[torch.device] = None) -> Optional[torch.Tensor]:
    """Additive attention bias that hides padded keys, grouped like the tokens.

    Args:
        size: The (H, W) of the map before padding.
        padded_size: The (Hp, Wp) after bottom/right padding.
        group, interval: As for ``grid_partition``.
        value: What padded keys get added to their logits (CrossFormer's
            reference uses -1e6; -inf is exact masking).

    Returns:
        Tensor or None: ``(num_groups, 1, 1, N)`` with 0 for real keys and
        ``value`` for padded ones (broadcasts over batch, heads and queries),
        or None when nothing was padded.
    """
    (h, w), (hp, wp) = size, padded_size
    if (h, w) == (hp, wp):
        return None
    padded = torch.ones(1, hp, wp, 1, device=device, dtype=torch.bool)
    padded[:, :h, :w] = False
    padded = grid_partition(padded, group, interval)  # (num_groups, N, 1)
    bias = torch.zeros(padded.shape[0], 1, 1, padded.shape[1], device=device)
    return bias.masked_fill(padded.transpose(1, 2).unsqueeze(1), value)
