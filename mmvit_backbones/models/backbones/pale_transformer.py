"""Pale Transformer (Wu et al., "Pale Transformer: A General Vision Transformer
Backbone with Pale-Shaped Attention", AAAI 2022).

The authors released no code or weights; this module follows the paper as
described in ``docs/pale.md``:

* four stages, each an overlapping convolutional patch merging (7x7 stride 4,
  then 3x3 stride 2) with LayerNorm, followed by Pale Transformer blocks;
* block (paper eq. 6-8): ``x += CPE(x)``; ``x += PSAttn(LN(x))``; ``x += MLP(LN(x))``;
* pale-shaped self-attention in its parallel form (eq. 1-3): Q, K and V come
  from separable convolutions (as in CvT); the first half of the channels (and
  heads) attends within groups of ``s_r`` interlaced rows, the second half
  within groups of ``s_c`` interlaced columns; the halves are concatenated and
  projected. Rows ``i, i + H/s_r, i + 2H/s_r, ...`` form row group ``i``.
"""
import logging
import math
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmengine.logging import print_log
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import constant_init, normal_init, trunc_normal_init
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...checkpoint import from_whole_model_state_dict
from ...registry import register_model
from ..layers import (
    DropPath,
    GroupLayout,
    Mlp,
    always_masked,
    attention,
    crop,
    drop_path_rates,
    maybe_checkpoint,
    nlc_to_nchw,
    pad_to,
)
from .base import MultiScaleBackbone, check_per_stage, check_rate, resolve_arch

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
        init_cfg (dict, optional): By the rule of :class:`MultiScaleBackbone`:
            None -> truncated-normal initialisation; ``dict(type='Pretrained',
            checkpoint=...)`` loads weights trained with this project (backbone,
            classifier or whole detector/segmentor files; see ``docs/pale.md``).
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
        self.embed_dims, self.depths, self.num_heads = (
            check_per_stage(arch[key], f'arch[{key!r}]', owner, self.num_stages) for key in self.essential_keys)
        self.pale_size = check_per_stage(pale_size, 'pale_size', owner, self.num_stages, allow_scalar=True)
        check_rate(drop_path_rate, 'drop_path_rate', owner)
        check_rate(mlp_ratio, 'mlp_ratio', owner, high=None)
        self.stage_channels = list(self.embed_dims)

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
        self.add_output_norms(lambda channels: build_norm_layer(norm_cfg, channels)[1])

    def stem_modules(self) -> List[nn.Module]:
        return [self.stages[0].patch_merging]

    def blocks(self) -> List[nn.Module]:
        return [block for stage in self.stages for block in stage.blocks]

    def stage_modules(self, index: int) -> List[nn.Module]:
        return [self.stages[index]]

    def init_weights_from_scratch(self) -> None:
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
        segmentor one (``backbone.*``), also in the former layout with separate
        ``attn.to_q`` / ``to_k`` / ``to_v`` convolutions (:func:`convert_separate_qkv`).
        Pale Transformer has no released reference weights.

        A checkpoint trained with other ``out_indices`` (an ImageNet classifier
        has ``norm3`` only) lacks the output norms of the other stages: the base
        class leaves those at their initialisation and logs it.
        """
        return convert_separate_qkv(from_whole_model_state_dict(state_dict))

    def forward_stages(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = []
        for i, stage in enumerate(self.stages[:self.out_indices[-1] + 1]):
            tokens, size = stage(x)
            if i in self.out_indices:
                outs.append(nlc_to_nchw(self.output_norm(i)(tokens), size))
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
            PaleBlock(embed_dims, num_heads, mlp_ratio, drop_path_rates[i], norm_cfg, conv_norm_cfg, self.pale_size)
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Pair]:
        """``(B, C_in, H_in, W_in)`` map to ``(B, H·W, C)`` tokens and ``(H, W)``."""
        tokens, size = self.patch_merging(x)
        # Every block of the stage shares the grouping and padding masks.
        layouts = PaleLayouts.build(size, self.pale_size, tokens.device)
        x = tokens.unflatten(1, size)
        for block in self.blocks:
            x = maybe_checkpoint(block, x, layouts, with_cp=self.with_cp)
        return x.flatten(1, 2), size


class PaleBlock(BaseModule):
    """Pale Transformer block (paper eq. 6-8).

    ``x += CPE(x)``; ``x += DropPath(PSAttn(LN(x)))``; ``x += DropPath(MLP(LN(x)))``,
    where CPE is a depthwise 3x3 convolution with bias.

    Works on channels-last ``(B, H, W, C)`` maps, so that a compiled block
    reads ``H`` and ``W`` from its input's shape (see :meth:`forward`).
    ``pale_size`` ``(s_r, s_c)`` is the stage's (default: the paper's 7).
    """

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float, drop_path: float, norm_cfg: dict,
                 conv_norm_cfg: dict, pale_size: Pair = (7, 7)) -> None:
        super().__init__()
        self.pale_size = tuple(pale_size)
        self.cpe = nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims)
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.attn = PaleAttention(embed_dims, num_heads, conv_norm_cfg)
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, layouts: Optional['PaleLayouts'] = None) -> torch.Tensor:
        """``(B, H, W, C)`` map in and out.

        ``layouts`` is ``PaleLayouts.build`` of the map's size and ``pale_size``
        (a stage builds it once for all its blocks); None builds it here. While
        traced (``torch.compile`` / ``torch.export``) the block builds its own
        from the input's shape: its padded sizes and group counts are then
        expressions of the map's size symbols, where integers passed in would be
        symbols of their own (of unknown sign, specialised at 0 and 1, so new
        sizes would compile again).
        """
        if torch.compiler.is_compiling() or layouts is None:
            layouts = PaleLayouts.build(x.shape[1:3], self.pale_size, x.device)
        # CPE stays in the residual stream's precision under autocast: casting its
        # input and weights both ways costs more kernels than the small depthwise
        # convolution saves, and cuDNN's bf16 depthwise backward is the slower one.
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x + self.cpe(x.permute(0, 3, 1, 2).to(self.cpe.weight.dtype)).permute(0, 2, 3, 1)
        # The attention takes and gives (B, H·W, C) tokens: views of the map.
        x = x + self.drop_path(self.attn(self.norm1(x).flatten(1, 2), layouts).view_as(x))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PaleLayouts(NamedTuple):
    """The row and column groups of one map size (:meth:`GroupLayout.pales`).

    ``fused`` says whether both branches can be attended in one call: same
    number of groups and tokens per group (a square padded map). Then the
    column groups are taken in transposed member order (columns of the pale
    first), the order in which they have the row groups' shape;
    ``fused_key_bias`` hides padded keys of both branches in that order,
    ``(1, 2·G, 1, N)`` as the attention passes it (groups on SDPA's head axis, heads on its batch axis).
    While traced (``torch.compile`` / ``torch.export``) the branches are never
    fused: "is the padded map square?" would be a size-dependent branch of
    the graph (a second graph, or an export that holds for square maps only).
    """
    rows: GroupLayout
    cols: GroupLayout
    fused: bool
    fused_key_bias: Optional[torch.Tensor]

    @property
    def size(self) -> Pair:
        return self.rows.size

    @classmethod
    def build(cls, size: Pair, pale_size: Pair, device: Optional[torch.device] = None) -> 'PaleLayouts':
        rows, cols = GroupLayout.pales(size, pale_size, device)
        fused = (not always_masked() and rows.group == cols.group[::-1] and rows.num_groups == cols.num_groups)
        fused_bias = None
        if fused and rows.key_bias is not None:
            col_bias = cols.key_bias.unflatten(-1, cols.group).transpose(-1, -2).flatten(-2)
            fused_bias = torch.stack([rows.key_bias, col_bias])  # (2, G, 1, 1, N)
        return cls(rows, cols, fused, fused_bias)


class SeparableQKV(nn.Module):
    """Q, K and V from one separable convolution of the map (as in CvT).

    The paper's three separable convolutions (depthwise 3x3, BatchNorm,
    pointwise 1x1 with bias) read the same input, so they run as one: a
    depthwise convolution with channel multiplier 3 (each input channel read
    once, three filters on it), one norm over the ``3C`` channels and a
    pointwise convolution in three groups. Keys ``depthwise.weight``
    ``(3C, 1, 3, 3)``, ``norm.*`` ``(3C,)``, ``pointwise.weight`` ``(3C, C, 1, 1)``
    and ``pointwise.bias``, all laid out ``[q | k | v]``: the concatenation of
    the former ``to_q``, ``to_k``, ``to_v`` modules (:func:`convert_separate_qkv`
    converts those files). The multiplier convolution takes its filters and
    gives its outputs in ``(channel, q/k/v)`` order; one copy of each puts them
    in and out of the stored order.
    """

    def __init__(self, embed_dims: int, conv_norm_cfg: dict) -> None:
        super().__init__()
        # Holds the [q | k | v] filters; forward convolves with them reordered (groups=C, see above).
        self.depthwise = nn.Conv2d(3 * embed_dims, 3 * embed_dims, 3, padding=1, groups=3 * embed_dims, bias=False)
        self.norm = build_norm_layer(conv_norm_cfg, 3 * embed_dims)[1]
        self.pointwise = nn.Conv2d(3 * embed_dims, 3 * embed_dims, 1, groups=3)

    def forward(self, x: torch.Tensor, size: Pair) -> torch.Tensor:
        """``(B, H·W, C)`` tokens to a ``(B, H, W, 3C)`` map laid out ``[q | k | v]``."""
        b, _, c = x.shape
        h, w = size
        device = x.device.type
        # Under autocast the whole path runs in its dtype, as the three
        # separate convolutions did: fp32 depthwise outputs kept for backward
        # cost 2x their memory (docs/benchmarks/README.md, session 4).
        weight = self.depthwise.weight
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
        # Filters to (channel, q/k/v) order, cast in the same copy.
        weight = weight.view(3, c, 1, 3, 3).transpose(0, 1)
        weight = weight.to(dtype, copy=True, memory_format=torch.contiguous_format).view(3 * c, 1, 3, 3)
        # The token layout makes every map here a channels-last view.
        per_channel = nn.functional.conv2d(nlc_to_nchw(x, size), weight, None, 1, 1, 1, c)  # (B, C·3, H, W)
        # (channel, q/k/v) -> [q | k | v]: one channels-last copy.
        qkv = per_channel.permute(0, 2, 3, 1).view(b, h, w, c, 3).transpose(3, 4).reshape(b, h, w, 3 * c)
        qkv = self.norm(qkv.permute(0, 3, 1, 2))
        return self.pointwise(qkv).permute(0, 2, 3, 1)


def convert_separate_qkv(state_dict: Mapping[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Old Pale files (``attn.to_q`` / ``to_k`` / ``to_v`` separable convolutions)
    to the fused ``attn.qkv`` layout of :class:`SeparableQKV`, logging a warning.

    Returns the input unchanged when it holds no old keys.
    """
    old = re.compile(r'^((?:.*\.)?attn)\.to_([qkv])\.'
                     r'(depthwise_conv\.conv|depthwise_conv\.bn|pointwise_conv\.conv)\.(.+)$')
    renamed = {'depthwise_conv.conv': 'depthwise', 'depthwise_conv.bn': 'norm', 'pointwise_conv.conv': 'pointwise'}
    parts: Dict[Tuple[str, str, str], Dict[str, torch.Tensor]] = {}
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state_dict.items():
        match = old.match(key)
        if match is None:
            out[key] = value
            continue
        prefix, which, module, leaf = match.groups()
        new_key = f'{prefix}.qkv.{renamed[module]}.{leaf}'
        parts.setdefault((prefix, module, leaf), {})[which] = value
        out.setdefault(new_key, None)
    if not parts:
        return out
    for (prefix, module, leaf), values in parts.items():
        new_key = f'{prefix}.qkv.{renamed[module]}.{leaf}'
        if sorted(values) != ['k', 'q', 'v']:
            raise KeyError(f'{prefix}.to_{{q,k,v}}.{module}.{leaf}: only {sorted(values)} found; '
                           'an old-layout Pale file needs all three')
        if leaf == 'num_batches_tracked':
            out[new_key] = torch.stack([values[n] for n in 'qkv']).max()
        else:
            out[new_key] = torch.cat([values[n] for n in 'qkv'])
    print_log(f'Pale Transformer: converted {len(parts)} tensors of the old separate to_q/to_k/to_v layout '
              'into the fused attn.qkv layout (docs/pale.md)', logger='current', level=logging.WARNING)
    return out


class PaleAttention(BaseModule):
    """Pale-shaped self-attention, parallel implementation (paper eq. 1-3).

    Q, K and V come from separable convolutions of the whole map
    (:class:`SeparableQKV`). Channels ``[0, C/2)`` (heads ``[0, h/2)``) of
    each attend within row groups, channels ``[C/2, C)`` within column groups;
    ``head_dim = C / h`` and the scale is ``head_dim ** -0.5``. The
    concatenated halves go through a Linear ``proj``.

    Args:
        embed_dims (int): Channels ``C``.
        num_heads (int): Heads ``h`` (even; ``h / 2`` per branch).
        conv_norm_cfg (dict, optional): Norm after the depthwise convolution.
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
        self.qkv = SeparableQKV(embed_dims, conv_norm_cfg)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: torch.Tensor, layouts: PaleLayouts) -> torch.Tensor:
        """``(B, H·W, C)`` tokens (already normalised) in and out."""
        b, n, c = x.shape
        # Padding comes after the convolutions, so that BatchNorm statistics
        # see real tokens only; padded keys are masked anyway.
        out = self.attend(self.qkv(x, layouts.size), layouts)
        return self.proj(out.reshape(b, n, c))

    def attend(self, qkv: torch.Tensor, layouts: PaleLayouts) -> torch.Tensor:
        """Row/column attention of a ``(B, H, W, 3C)`` ``[q | k | v]`` map; returns ``(B, H, W, C)``."""
        rows, cols = layouts.rows, layouts.cols
        b = qkv.shape[0]
        hp, wp = rows.padded_size
        heads, d = self.num_heads // 2, self.head_dim
        qkv = pad_to(qkv, rows.padded_size)
        (s_r, _), (n_r, _) = rows.group, rows.interval
        (_, s_c), (_, n_c) = cols.group, cols.interval
        # Pixel (a·N_r + i, a'·N_c + j) is in row group i (member (a, x)) and column
        # group j (member (y, a')); channels are (q/k/v, branch, head, d). Splitting
        # both axes keeps every step below a view of the map until one copy into
        # attention layout per call, and makes the backward's merge of the two
        # branches (unbind's stack) land in the map's own layout, without a copy.
        # Heads go to SDPA's batch axis and groups to its head axis, so that a
        # group's key bias broadcasts over heads without a copy.
        row_branch, col_branch = qkv.view(b, s_r, n_r, s_c, n_c, 3, 2, heads, d).unbind(6)
        # -> (3, B, heads, N_r, s_r, Wp as (s_c, N_c), d)
        row_groups = row_branch.permute(5, 0, 6, 2, 1, 3, 4, 7)
        if layouts.fused:
            # Columns taken (a, y): the same shape as the rows, so one call attends both.
            # -> (3, B, heads, N_c, s_c, Hp as (s_r, N_r), d)
            col_groups = col_branch.permute(5, 0, 6, 4, 3, 1, 2, 7)
            groups = torch.stack([row_groups, col_groups], dim=3)
            q, k, v = groups.view(3, b * heads, 2 * n_r, s_r * wp, d).unbind(0)
            out = attention(q, k, v, bias=self._group_bias(layouts.fused_key_bias), scale=self.scale)
            # (B, heads, N_r, s_r, Wp as (s_c, N_c), d) and (B, heads, N_c, s_c, Hp as (s_r, N_r), d)
            row_out, col_out = out.view(b, heads, 2, n_r, s_r, s_c, n_c, d).unbind(2)
            col_map = col_out.permute(0, 4, 5, 3, 2, 1, 6)
        else:
            # contiguous(): where the reshape is a view (one head, one group along an axis), SDPA would
            # keep the whole padded map alive for backward instead of this branch's half of it.
            q, k, v = row_groups.reshape(3, b * heads, n_r, s_r * wp, d).contiguous().unbind(0)
            row_out = attention(q, k, v, bias=self._group_bias(rows.key_bias), scale=self.scale)
            # -> (3, B, heads, N_c, Hp as (s_r, N_r), s_c, d)
            col_groups = col_branch.permute(5, 0, 6, 4, 1, 2, 3, 7)
            q, k, v = col_groups.reshape(3, b * heads, n_c, hp * s_c, d).contiguous().unbind(0)
            col_out = attention(q, k, v, bias=self._group_bias(cols.key_bias), scale=self.scale)
            row_out = row_out.view(b, heads, n_r, s_r, s_c, n_c, d)
            col_map = col_out.view(b, heads, n_c, s_r, n_r, s_c, d).permute(0, 3, 4, 5, 2, 1, 6)
        # Back to pixels in one copy (the cat): both branches as (B, s_r, N_r, s_c, N_c, heads, d),
        # i.e. (B, Hp, Wp, heads, d).
        row_map = row_out.permute(0, 3, 2, 4, 5, 1, 6)
        out = torch.cat([row_map, col_map], dim=5).view(b, hp, wp, 2 * heads * d)
        return crop(out, rows.size)

    @staticmethod
    def _group_bias(key_bias: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """``(..., G, 1, 1, N)`` key bias to ``(1, ..·G, 1, N)``, a view: groups share SDPA's head axis."""
        if key_bias is None:
            return None
        return key_bias.view(1, -1, 1, key_bias.shape[-1])
