"""CrossFormer's block, LSDA and DPB as they were before issue 14's audit:
the reference the new implementation must equal, forward and gradients.
"""
import functools
from typing import NamedTuple, Tuple

import torch
from torch import nn

from mmvit_backbones.models.layers import (
    DropPath,
    Mlp,
    attention,
    grid_partition,
    grid_reverse,
    pad_to_multiple,
)

from .partition_reference import padding_key_bias

Pair = Tuple[int, int]
PADDED_KEY_BIAS = -1e6


class CrossFormerBlock(nn.Module):
    """Pre-norm transformer block with LSDA, and an optional ACL.

    ``x = x + attn(norm1(x)); x = x + mlp(norm2(x))``; with ACL the block
    output is ``ex_ln(ex_conv(x))``, without a residual (that is what cools the
    amplitude). Works on channels-last ``(B, H, W, C)`` maps.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 group_size: int,
                 interval: int,
                 long_distance: bool,
                 lda_version: int,
                 mlp_ratio: float = 4.,
                 drop_path_rate: float = 0.,
                 use_acl: bool = False) -> None:
        super().__init__()
        # Registration order follows the reference so state dicts list keys in its order.
        self.norm1 = nn.LayerNorm(dim)
        self.attn = LongShortDistanceAttention(dim, num_heads, group_size, interval, long_distance, lda_version)
        if use_acl:
            self.ex_conv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)
            self.ex_ln = nn.LayerNorm(dim)
        else:
            self.ex_conv = self.ex_ln = None
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        if self.ex_conv is not None:
            x = self.ex_ln(self.ex_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
        return x


class GroupLayout(NamedTuple):
    """How a map is cut into attention groups (see :func:`grid_partition`)."""

    group: Pair  #: tokens per group, (rows, columns)
    interval: Pair  #: spacing of a group's members, (rows, columns)
    padded: Pair  #: map size after bottom/right zero padding


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def group_layout(size: Pair, group_size: int, interval: int, long_distance: bool, lda_version: int) -> GroupLayout:
    """The groups one LSDA block forms on an ``(h, w)`` map.

    * ``min(h, w) <= group_size``: one global group of ``h × w`` tokens.
    * SDA: ``G × G`` windows, padded to multiples of ``G``.
    * LDA v2: ``G × G`` tokens spaced ``I`` apart, padded to multiples of ``G·I``.
    * LDA v1: ``I × I`` groups of ``ceil(h/I) × ceil(w/I)`` tokens spaced ``I``
      apart, padded to multiples of ``I``.
    """
    h, w = size
    if min(h, w) <= group_size:
        return GroupLayout((h, w), (1, 1), (h, w))
    if not long_distance:
        return GroupLayout((group_size, group_size), (1, 1), (_round_up(h, group_size), _round_up(w, group_size)))
    if lda_version == 2:
        span = group_size * interval
        return GroupLayout((group_size, group_size), (interval, interval), (_round_up(h, span), _round_up(w, span)))
    hp, wp = _round_up(h, interval), _round_up(w, interval)
    return GroupLayout((hp // interval, wp // interval), (interval, interval), (hp, wp))


class DynamicPosBias(nn.Module):
    """Dynamic position bias: an MLP from a relative offset (Δh, Δw) to one
    logit bias per head.

    ``pos_proj`` (2 → d), then three ``[LayerNorm, ReLU, Linear]`` blocks
    (``pos1``, ``pos2``: d → d; ``pos3``: d → heads), with ``d = C // 16``.
    Offsets are raw integers in group coordinates, so one set of weights
    serves any group size.
    """

    def __init__(self, pos_dims: int, num_heads: int) -> None:
        super().__init__()
        self.pos_proj = nn.Linear(2, pos_dims)
        self.pos1 = nn.Sequential(nn.LayerNorm(pos_dims), nn.ReLU(), nn.Linear(pos_dims, pos_dims))
        self.pos2 = nn.Sequential(nn.LayerNorm(pos_dims), nn.ReLU(), nn.Linear(pos_dims, pos_dims))
        self.pos3 = nn.Sequential(nn.LayerNorm(pos_dims), nn.ReLU(), nn.Linear(pos_dims, num_heads))

    def forward(self, offsets: torch.Tensor) -> torch.Tensor:
        """``(..., 2)`` offsets to ``(..., num_heads)`` biases."""
        return self.pos3(self.pos2(self.pos1(self.pos_proj(offsets))))

    def bias_for_group(self, group: Pair, device: torch.device) -> torch.Tensor:
        """The ``(num_heads, N, N)`` bias of a ``group[0] × group[1]`` group.

        The MLP runs once on the ``(2·gh−1)(2·gw−1)`` distinct offsets (not on
        the N² pairs); the result is gathered per (query, key) pair.
        """
        offsets, index = _relative_offsets(group, device)
        # The table is small: run it outside autocast, so that offsets above 256 stay exact (bf16 would round them).
        with torch.autocast(device_type=device.type, enabled=False):
            table = self(offsets.to(self.pos_proj.weight.dtype))  # ((2gh-1)(2gw-1), heads)
        return table[index].permute(2, 0, 1).contiguous()


def _relative_offsets(group: Pair, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """The distinct (Δh, Δw) offsets of a group, ``((2gh-1)(2gw-1), 2)`` float, and
    the ``(N, N)`` index of each (query, key) pair's offset among them.

    Cached per group size and device in eager mode: every block of a stage
    uses the same groups, and building them costs a dozen small ops of host
    time per block. A compiled graph builds (and folds) them itself.
    """
    if torch.compiler.is_compiling():
        return _build_relative_offsets(group, device)
    return _cached_relative_offsets(group, device)


@functools.lru_cache(maxsize=32)
def _cached_relative_offsets(group: Pair, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    # Ordinary tensors even when first asked for under inference_mode: training saves them for backward.
    with torch.inference_mode(False):
        return _build_relative_offsets(group, device)


def _build_relative_offsets(group: Pair, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    gh, gw = group
    rows = torch.arange(1 - gh, gh, device=device)
    cols = torch.arange(1 - gw, gw, device=device)
    offsets = torch.stack(torch.meshgrid(rows, cols, indexing='ij'), dim=-1).reshape(-1, 2).float()
    coords = torch.stack(
        torch.meshgrid(torch.arange(gh, device=device), torch.arange(gw, device=device), indexing='ij')).flatten(1)
    relative = coords[:, :, None] - coords[:, None, :]  # (2, N, N): query minus key
    index = (relative[0] + gh - 1) * (2 * gw - 1) + (relative[1] + gw - 1)
    return offsets, index


class LongShortDistanceAttention(nn.Module):
    """Multi-head attention inside the groups of one SDA or LDA block.

    Takes the normalised ``(B, H, W, C)`` map, pads it at the bottom/right,
    groups it (:func:`group_layout`), attends with the DPB bias plus a -1e6
    bias on padded keys, ungroups, crops and projects. The configuration is
    fixed at construction; the layout is computed per forward.
    """

    def __init__(self, dim: int, num_heads: int, group_size: int, interval: int, long_distance: bool,
                 lda_version: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.group_size = group_size
        self.interval = interval
        self.long_distance = long_distance
        self.lda_version = lda_version
        self.scale = (dim // num_heads)**-0.5
        self.pos = DynamicPosBias(dim // 16, num_heads)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def layout(self, size: Pair) -> GroupLayout:
        return group_layout(size, self.group_size, self.interval, self.long_distance, self.lda_version)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        layout = self.layout((h, w))
        x, _ = pad_to_multiple(x, layout.padded)
        groups = grid_partition(x, layout.group, layout.interval)  # (B·nG, N, C)
        num_groups, num_tokens = groups.shape[0] // b, groups.shape[1]
        qkv = self.qkv(groups).view(b, num_groups, num_tokens, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # each (B, nG, heads, N, d)

        bias = self.pos.bias_for_group(layout.group, x.device)  # (heads, N, N), shared by all groups
        key_mask = padding_key_bias((h, w), layout.padded, layout.group, layout.interval, PADDED_KEY_BIAS,
                                    x.device)  # (nG, 1, 1, N) or None
        if key_mask is None:
            # Groups as batch: the bias broadcasts over B·nG.
            shape = (b * num_groups, self.num_heads, num_tokens, -1)
        else:
            # Groups and heads share one axis so that the per-group mask broadcasts over B only.
            bias = (bias + key_mask).reshape(num_groups * self.num_heads, num_tokens, num_tokens)
            shape = (b, num_groups * self.num_heads, num_tokens, -1)
        out = attention(q.reshape(shape), k.reshape(shape), v.reshape(shape), bias=bias, scale=self.scale)
        out = out.reshape(b * num_groups, self.num_heads, num_tokens, -1).transpose(1, 2).reshape(
            b * num_groups, num_tokens, c)
        out = grid_reverse(out, layout.padded, layout.group, layout.interval)[:, :h, :w]
        return self.proj(out)
