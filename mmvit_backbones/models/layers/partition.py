"""Grouping token maps for local attention, its inverse, and padding masks.

Everything that forms a group of tokens lives here:

* windows (Swin / CrossFormer SDA / SG-Former local branch): contiguous G×G tiles;
* interval groups (CrossFormer LDA): G×G tokens spaced I apart;
* pales (Pale Transformer): interlaced rows or columns, i.e. an interval group
  that spans the whole other axis.

All three are one operation, :func:`grid_partition`: a map of size
``(R·G·I) × (R'·G'·I')`` is cut into regions of ``G·I`` rows (``G'·I'`` columns);
inside a region, the tokens whose row offsets agree modulo ``I`` (column offsets
modulo ``I'``) form a group of ``G × G'`` tokens. ``I = 1`` gives windows.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

Pair = Tuple[int, int]


def pad_to_multiple(x: torch.Tensor, multiple: Pair) -> Tuple[torch.Tensor, Pair]:
    """Zero-pad a ``(B, H, W, C)`` map at the bottom/right to multiples of ``multiple``.

    Returns the padded map and the (pad_h, pad_w) added.
    """
    _, h, w, _ = x.shape
    pad_h = (multiple[0] - h % multiple[0]) % multiple[0]
    pad_w = (multiple[1] - w % multiple[1]) % multiple[1]
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    return x, (pad_h, pad_w)


def grid_partition(x: torch.Tensor, group: Pair, interval: Pair = (1, 1)) -> torch.Tensor:
    """Split a ``(B, H, W, C)`` map into groups of ``group[0] × group[1]`` tokens.

    Token ``(gh, gw)`` of the group ``(rh, rw, ih, iw)`` is pixel
    ``(rh·G·I + gh·I + ih, rw·G'·I' + gw·I' + iw)``. Groups are ordered
    ``(b, rh, rw, ih, iw)`` along the batch axis; members row-major ``(gh, gw)``.
    H must be a multiple of ``G·I`` and W of ``G'·I'`` (pad first).

    Returns:
        Tensor: ``(B · num_groups, G·G', C)``.
    """
    b, h, w, c = x.shape
    (gh, gw), (ih, iw) = group, interval
    rh, rw = h // (gh * ih), w // (gw * iw)
    if rh * gh * ih != h or rw * gw * iw != w:
        raise ValueError(f'a {h}x{w} map does not tile into groups {group} with interval {interval}')
    x = x.view(b, rh, gh, ih, rw, gw, iw, c).permute(0, 1, 4, 3, 6, 2, 5, 7)
    return x.reshape(-1, gh * gw, c)


def grid_reverse(groups: torch.Tensor, size: Pair, group: Pair, interval: Pair = (1, 1)) -> torch.Tensor:
    """Inverse of :func:`grid_partition`: ``(B·num_groups, G·G', C)`` to ``(B, H, W, C)``."""
    h, w = size
    (gh, gw), (ih, iw) = group, interval
    rh, rw = h // (gh * ih), w // (gw * iw)
    c = groups.shape[-1]
    x = groups.view(-1, rh, rw, ih, iw, gh, gw, c).permute(0, 1, 5, 3, 2, 6, 4, 7)
    return x.reshape(-1, h, w, c)


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
        group, interval: As for :func:`grid_partition`.
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
