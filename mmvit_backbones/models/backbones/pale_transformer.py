"""Pale Transformer (Wu et al., "Pale Transformer: A General Vision Transformer
Backbone with Pale-Shaped Attention", AAAI 2022).

The authors released no code or weights; this module follows the project's
specification (``spec/pale.md``), built from the paper:

* four stages, each an overlapping convolutional patch merging (7x7 stride 4,
  then 3x3 stride 2) with LayerNorm, followed by Pale Transformer blocks;
* block (paper eq. 6-8): ``x += CPE(x)``; ``x += PSAttn(LN(x))``; ``x += MLP(LN(x))``;
* pale-shaped self-attention in its parallel form (eq. 1-3): Q, K and V come
  from separable convolutions (as in CvT); the first half of the channels (and
  heads) attends within groups of ``s_r`` interlaced rows, the second half
  within groups of ``s_c`` interlaced columns; the halves are concatenated and
  projected. Rows ``i, i + H/s_r, i + 2H/s_r, ...`` form row group ``i``.
"""
import math
from typing import List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn import DepthwiseSeparableConvModule, build_norm_layer
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import constant_init, normal_init, trunc_normal_init
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...checkpoint import fill_missing_output_norms, strip_backbone_prefix
from ...registry import register_model
from ..layers import (
    DropPath,
    Mlp,
    attention,
    drop_path_rates,
    grid_partition,
    grid_reverse,
    maybe_checkpoint,
    nchw_to_nlc,
    nlc_to_nchw,
    pad_to_multiple,
    padding_key_bias,
)
from .base import MultiScaleBackbone, resolve_arch

Pair = Tuple[int, int]


@register_model
class PaleTransformer(MultiScaleBackbone):
    """Pale Transformer backbone.

    A PyTorch implementation of `Pale Transformer: A General Vision Transformer
    Backbone with Pale-Shaped Attention <https://arxiv.org/abs/2112.14000>`_.

    Inputs of any size work: each attention pads its map at the bottom/right to
    multiples of the pale size, masks the padded keys and crops the result;
    a map smaller than the pale along an axis is attended as a whole along it.

    Args:
        arch (str | dict): ``'t'``, ``'s'`` or ``'b'`` (paper Table 1), or a
            dict with keys ``embed_dims``, ``depths`` and ``num_heads`` (four
            entries each; every head count even, as heads split between the
            row and column branches). Defaults to ``'s'``.
        pale_size (int | Sequence[int]): Rows per row group and columns per
            column group (``s_r = s_c``), one value or one per stage.
            Defaults to 7.
        mlp_ratio (float): Hidden width of the MLP over the embedding width.
            Defaults to 4.
        in_channels (int): Channels of the input image. Defaults to 3.
        out_indices (int | Sequence[int]): Stages whose outputs are returned,
            each through its own LayerNorm (``norm{i}``). Defaults to
            ``(0, 1, 2, 3)``.
        drop_path_rate (float): Stochastic depth rate of the last block,
            rising linearly from 0. The paper trains ImageNet with 0.2 / 0.4 /
            0.5 for T / S / B. Defaults to 0.1.
        norm_cfg (dict, optional): Norm of the tokens (patch merging, blocks,
            outputs). None means ``dict(type='LN')``.
        conv_norm_cfg (dict, optional): Norm inside the separable Q/K/V
            convolutions (e.g. ``dict(type='SyncBN')`` for multi-GPU training).
            None means ``dict(type='BN')``.
        frozen_stages (int): ``-1`` freezes nothing, ``0`` the first patch
            merging, ``k`` the first ``k`` stages (with their output norms).
            Defaults to -1.
        norm_eval (bool): Keep the BatchNorms of the Q/K/V convolutions in
            eval mode while training. Defaults to False.
        with_cp (bool | str): Activation checkpointing of each block: ``True``,
            ``'selective'`` or ``False`` (see :class:`MultiScaleBackbone`).
            Defaults to False.
        compile (bool | dict): Compile each block with ``torch.compile``
            (see :class:`MultiScaleBackbone`). Defaults to False.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)``
            loads weights trained with this project (backbone, classifier or
            whole detector/segmentor files; see ``docs/pale.md``). Defaults to
            None (truncated-normal initialisation).
    """

    arch_zoo = {
        't': dict(embed_dims=[64, 128, 256, 512], depths=[2, 2, 16, 2], num_heads=[2, 4, 8, 16]),
        's': dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 16, 2], num_heads=[2, 4, 8, 16]),
        'b': dict(embed_dims=[128, 256, 512, 1024], depths=[2, 2, 16, 2], num_heads=[4, 8, 16, 32]),
    }
    essential_keys = ('embed_dims', 'depths', 'num_heads')
    # Output norms of stages this instance does not return (a checkpoint
    # trained with other out_indices) are dropped with an info message.
    expected_extra_keys = ('head.*', 'norm[0-3].*')

    def __init__(self,
                 arch: Union[str, dict] = 's',
                 pale_size: Union[int, Sequence[int]] = 7,
                 mlp_ratio: float = 4.,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.1,
                 norm_cfg: Optional[dict] = None,
                 conv_norm_cfg: Optional[dict] = None,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: Union[bool, str] = False,
                 compile: Union[bool, dict] = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(in_channels=in_channels, out_indices=out_indices, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, with_cp=with_cp, compile=compile, init_cfg=init_cfg)
        owner = type(self).__name__
        norm_cfg = norm_cfg or dict(type='LN')
        conv_norm_cfg = conv_norm_cfg or dict(type='BN')
        arch = resolve_arch(arch, self.arch_zoo, self.essential_keys, owner)
        for key in self.essential_keys:
            if len(arch[key]) != self.num_stages:
                raise ValueError(f'{owner}: arch[{key!r}] needs {self.num_stages} entries, got {arch[key]}')
        if isinstance(pale_size, int):
            pale_size = [pale_size] * self.num_stages
        if len(pale_size) != self.num_stages or not all(isinstance(s, int) and s > 0 for s in pale_size):
            raise ValueError(f'{owner}: pale_size must be a positive int or {self.num_stages} of them, '
                             f'got {pale_size!r}')
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f'{owner}: drop_path_rate must be in [0, 1), got {drop_path_rate}')
        self.embed_dims = list(arch['embed_dims'])
        self.depths = list(arch['depths'])
        self.num_heads = list(arch['num_heads'])
        self.pale_size = list(pale_size)

        rates = drop_path_rates(drop_path_rate, self.depths)
        self.stages = ModuleList()
        channels = in_channels
        for i in range(self.num_stages):
            self.stages.append(
                PaleStage(
                    in_channels=channels,
                    embed_dims=self.embed_dims[i],
                    depth=self.depths[i],
                    num_heads=self.num_heads[i],
                    pale_size=self.pale_size[i],
                    mlp_ratio=mlp_ratio,
                    # Paper: 7x7 stride 4 for the first merging, 3x3 stride 2 after.
                    patch_size=7 if i == 0 else 3,
                    patch_stride=4 if i == 0 else 2,
                    drop_path_rates=rates[i],
                    norm_cfg=norm_cfg,
                    conv_norm_cfg=conv_norm_cfg,
                    with_cp=with_cp))
            channels = self.embed_dims[i]
        for i in self.out_indices:
            self.add_module(f'norm{i}', build_norm_layer(norm_cfg, self.embed_dims[i])[1])

    def stem_modules(self) -> List[nn.Module]:
        return [self.stages[0].patch_merging]

    def blocks(self) -> List[nn.Module]:
        return [block for stage in self.stages for block in stage.blocks]

    def stage_modules(self, index: int) -> List[nn.Module]:
        modules = [self.stages[index]]
        if index in self.out_indices:
            modules.append(getattr(self, f'norm{index}'))
        return modules

    def init_weights_from_scratch(self) -> None:
        if self.init_cfg is not None:
            super().init_weights_from_scratch()
            return
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_init(module, std=.02, bias=0.)
            elif isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
                normal_init(module, mean=0., std=math.sqrt(2. / fan_out), bias=0.)
            elif isinstance(module, (nn.LayerNorm, _BatchNorm)):
                constant_init(module, val=1., bias=0.)

    def convert_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        """Take the backbone out of any file trained with this project.

        Accepted: a backbone state dict, or a whole classifier / detector /
        segmentor one (``backbone.*``). Pale Transformer has no released
        reference weights, so there is no other format to convert.

        A checkpoint trained with other ``out_indices`` (an ImageNet classifier
        has ``norm3`` only) lacks the output norms of the other stages: those
        keep their fresh initialisation, as they would when fine-tuning, and
        the fact is logged. Any other missing key is reported by the loader.
        """
        state_dict = strip_backbone_prefix(state_dict)
        if not any(key.startswith('stages.') for key in state_dict):
            return state_dict  # not a Pale Transformer: let the loader name every key
        fill_missing_output_norms(self, state_dict, [f'norm{i}' for i in self.out_indices])
        return state_dict

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """``(B, C_in, H, W)`` image to one ``(B, C_i, H_i, W_i)`` map per out index."""
        self.check_input(x)
        outs = []
        for i, stage in enumerate(self.stages):
            tokens, size = stage(x)
            if i in self.out_indices:
                outs.append(nlc_to_nchw(getattr(self, f'norm{i}')(tokens), size))
            x = nlc_to_nchw(tokens, size)
        return tuple(outs)


class PaleStage(BaseModule):
    """Overlapping patch merging followed by ``depth`` Pale Transformer blocks.

    Args:
        in_channels (int): Channels of the input map.
        embed_dims (int): Channels of the stage.
        depth (int): Number of blocks.
        num_heads (int): Attention heads of each block (half per branch).
        pale_size (int): ``s_r = s_c``.
        mlp_ratio (float): MLP hidden width over ``embed_dims``.
        patch_size (int): Kernel of the merging convolution (padding
            ``patch_size // 2``, so the output is ``ceil(H / stride)``).
        patch_stride (int): Its stride.
        drop_path_rates (Sequence[float]): One per block.
        norm_cfg (dict): Token norm.
        conv_norm_cfg (dict): Norm of the separable Q/K/V convolutions.
        with_cp (bool | str): Checkpoint mode of each block.
    """

    def __init__(self, in_channels: int, embed_dims: int, depth: int, num_heads: int, pale_size: int,
                 mlp_ratio: float, patch_size: int, patch_stride: int, drop_path_rates: Sequence[float],
                 norm_cfg: dict, conv_norm_cfg: dict, with_cp: Union[bool, str] = False) -> None:
        super().__init__()
        self.pale_size = (pale_size, pale_size)
        self.with_cp = with_cp
        self.patch_merging = PatchEmbed(
            in_channels=in_channels,
            embed_dims=embed_dims,
            kernel_size=patch_size,
            stride=patch_stride,
            padding=patch_size // 2,
            norm_cfg=norm_cfg)
        self.blocks = ModuleList([
            PaleBlock(embed_dims, num_heads, mlp_ratio, drop_path_rates[i], norm_cfg, conv_norm_cfg)
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Pair]:
        """``(B, C_in, H_in, W_in)`` map to ``(B, H·W, C)`` tokens and ``(H, W)``."""
        x, size = self.patch_merging(x)
        # Every block of the stage shares the grouping and padding masks.
        layout = pale_layout(size, self.pale_size, x.device)
        for block in self.blocks:
            x = maybe_checkpoint(block, x, layout, with_cp=self.with_cp)
        return x, size


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
