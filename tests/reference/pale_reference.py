"""Pale Transformer's block and attention as they were before the fused Q/K/V
path (issue 14): the reference the new implementation must equal, forward and
gradients. Old state-dict layout (``to_q`` / ``to_k`` / ``to_v``).
"""
import math
from typing import NamedTuple, Optional, Tuple

import torch
from mmcv.cnn import DepthwiseSeparableConvModule, build_norm_layer
from mmengine.model import BaseModule
from torch import nn

from mmvit_backbones.models.layers import (
    DropPath,
    Mlp,
    attention,
    grid_partition,
    grid_reverse,
    nchw_to_nlc,
    nlc_to_nchw,
    pad_to_multiple,
)

from .partition_reference import padding_key_bias

Pair = Tuple[int, int]


class PaleBlock(BaseModule):
    """Pale Transformer block (paper eq. 6-8).

    ``x += CPE(x)``; ``x += DropPath(PSAttn(LN(x)))``; ``x += DropPath(MLP(LN(x)))``,
    where CPE is a depthwise 3x3 convolution with bias.
    """

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float, drop_path: float, norm_cfg: dict,
                 conv_norm_cfg: dict) -> None:
        super().__init__()
        self.cpe = nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims)
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.attn = PaleAttention(embed_dims, num_heads, conv_norm_cfg)
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, layout: 'PaleLayout') -> torch.Tensor:
        """``(B, H·W, C)`` tokens in and out."""
        x = x + nchw_to_nlc(self.cpe(nlc_to_nchw(x, layout.size)))
        x = x + self.drop_path(self.attn(self.norm1(x), layout))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PaleLayout(NamedTuple):
    """How one map size is cut into row and column groups.

    ``size`` is the map, ``padded_size`` it after bottom/right padding to
    multiples of ``pale`` (the pale size, clipped to the map). Row groups are
    ``grid_partition(x, row_group, row_interval)``; column groups likewise.
    The biases hide padded keys (None when nothing is padded).
    """
    size: Pair
    padded_size: Pair
    pale: Pair
    row_group: Pair
    row_interval: Pair
    col_group: Pair
    col_interval: Pair
    row_bias: Optional[torch.Tensor]
    col_bias: Optional[torch.Tensor]


def pale_layout(size: Pair, pale_size: Pair, device: Optional[torch.device] = None) -> PaleLayout:
    """Row and column groups of a ``size`` map for pale size ``(s_r, s_c)``.

    With ``N_r = Hp / s_r``, row group ``i`` holds the ``s_r`` interlaced rows
    ``i, i + N_r, ..., i + (s_r - 1) N_r`` across the full (padded) width: a
    ``grid_partition`` group of ``(s_r, Wp)`` tokens with interval ``(N_r, 1)``.
    Column groups are the same along W. An axis shorter than the pale size is
    one group along it (``s`` clipped to the map).
    """
    h, w = size
    s_r, s_c = min(pale_size[0], h), min(pale_size[1], w)
    hp, wp = math.ceil(h / s_r) * s_r, math.ceil(w / s_c) * s_c
    row_group, row_interval = (s_r, wp), (hp // s_r, 1)
    col_group, col_interval = (hp, s_c), (1, wp // s_c)
    return PaleLayout(
        size=(h, w),
        padded_size=(hp, wp),
        pale=(s_r, s_c),
        row_group=row_group,
        row_interval=row_interval,
        col_group=col_group,
        col_interval=col_interval,
        row_bias=padding_key_bias((h, w), (hp, wp), row_group, row_interval, device=device),
        col_bias=padding_key_bias((h, w), (hp, wp), col_group, col_interval, device=device))


class PaleAttention(BaseModule):
    """Pale-shaped self-attention, parallel implementation (paper eq. 1-3).

    Q, K and V each come from a separable convolution of the whole map
    (depthwise 3x3, BatchNorm, pointwise 1x1 with bias). Channels
    ``[0, C/2)`` (heads ``[0, h/2)``) attend within row groups, channels
    ``[C/2, C)`` within column groups; ``head_dim = C / h`` and the scale is
    ``head_dim ** -0.5``. The concatenated halves go through a Linear ``proj``.

    Args:
        embed_dims (int): Channels ``C``.
        num_heads (int): Heads ``h`` (even; ``h / 2`` per branch).
        conv_norm_cfg (dict, optional): Norm after the depthwise convolutions.
            None means ``dict(type='BN')``.
    """

    def __init__(self, embed_dims: int, num_heads: int, conv_norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        conv_norm_cfg = conv_norm_cfg or dict(type='BN')
        if num_heads < 2 or num_heads % 2 or embed_dims % num_heads:
            raise ValueError(f'PaleAttention: num_heads must be even (split between rows and columns) and '
                             f'divide embed_dims; got num_heads={num_heads}, embed_dims={embed_dims}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dim = embed_dims // num_heads
        self.scale = self.head_dim ** -0.5
        self.to_q, self.to_k, self.to_v = (
            DepthwiseSeparableConvModule(
                embed_dims, embed_dims, 3, padding=1, dw_norm_cfg=conv_norm_cfg, pw_norm_cfg=None, act_cfg=None)
            for _ in range(3))
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: torch.Tensor, layout: PaleLayout) -> torch.Tensor:
        """``(B, H·W, C)`` tokens (already normalised) in and out."""
        b, n, c = x.shape
        x = nlc_to_nchw(x, layout.size)
        # Padding comes after the convolutions, so that BatchNorm statistics
        # see real tokens only; padded keys are masked anyway.
        q, k, v = (to(x).permute(0, 2, 3, 1) for to in (self.to_q, self.to_k, self.to_v))
        return self.proj(self.attend(q, k, v, layout).reshape(b, n, c))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: PaleLayout) -> torch.Tensor:
        """Row/column attention of ``(B, H, W, C)`` q, k, v maps; returns ``(B, H, W, C)``."""
        half = self.embed_dims // 2
        # One copy lays out [q, k, v] of the row half, then of the column half,
        # so that each branch is a channel slice that grid_partition can view.
        qkv = torch.cat([t[..., :half] for t in (q, k, v)] + [t[..., half:] for t in (q, k, v)], dim=-1)
        qkv, _ = pad_to_multiple(qkv, layout.pale)
        rows = self._grouped_attention(qkv[..., :3 * half], layout.row_group, layout.row_interval,
                                       layout.row_bias)
        cols = self._grouped_attention(qkv[..., 3 * half:], layout.col_group, layout.col_interval,
                                       layout.col_bias)
        h, w = layout.size
        return torch.cat([rows[:, :h, :w], cols[:, :h, :w]], dim=-1)

    def _grouped_attention(self, qkv: torch.Tensor, group: Pair, interval: Pair,
                           bias: Optional[torch.Tensor]) -> torch.Tensor:
        """Attention of one branch inside all its groups at once.

        ``qkv``: ``(B, Hp, Wp, 3·C/2)`` laid out ``[q | k | v]``; returns ``(B, Hp, Wp, C/2)``.
        """
        b, hp, wp, _ = qkv.shape
        heads = self.num_heads // 2
        groups = grid_partition(qkv, group, interval)  # (B·G, N, 3·C/2)
        num, tokens, _ = groups.shape
        q, k, v = groups.view(num, tokens, 3, heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if bias is not None:
            bias = bias.repeat(b, 1, 1, 1)  # groups are ordered batch-major
        out = attention(q, k, v, bias=bias, scale=self.scale)  # (B·G, heads, N, head_dim)
        out = out.transpose(1, 2).reshape(num, tokens, heads * self.head_dim)
        return grid_reverse(out, (hp, wp), group, interval)
