"""CrossFormer and CrossFormer++ backbones.

CrossFormer (Wang et al., ICLR 2022) and CrossFormer++ (TPAMI 2023), written
from the behaviour of the MIT-licensed reference implementation
(https://github.com/cheerss/CrossFormer) as recorded in ``docs/crossformer.md``. Module
and key names are the reference's (``patch_embed.projs.N``,
``layers.S.blocks.B.attn.pos.*``, ``layers.S.downsample.reductions.N``,
``ex_conv`` / ``ex_ln``), so *this project's checkpoint format is the reference
key layout* and released files load after dropping two deterministic buffers.

One implementation serves both models: CrossFormer++ is CrossFormer with a
per-stage ("progressive") group size and amplitude cooling layers (ACL).
"""
import functools
import logging
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import print_log
from mmengine.model.weight_init import constant_init, trunc_normal_init
from torch import nn

from ...checkpoint import from_whole_model_state_dict
from ...registry import register_model
from ..layers import (
    DropPath,
    GroupLayout,
    Mlp,
    attention,
    crop,
    drop_path_rates,
    maybe_checkpoint,
)
from ..layers.dpb_triton import dpb_mlp
from .base import MultiScaleBackbone, check_per_stage, check_rate, check_type, resolve_arch

Pair = Tuple[int, int]

#: Logit bias of padded keys; the reference adds -1e6 rather than -inf.
PADDED_KEY_BIAS = -1e6

#: Reference buffers that old checkpoints stored and that are rebuilt per forward here.
OBSOLETE_BUFFER_SUFFIXES = ('.attn.biases', '.attn.relative_position_index', '.attn_mask')

CROSSFORMER_ARCHS = {
    't': dict(embed_dims=64, depths=(1, 1, 8, 6), num_heads=(2, 4, 8, 16), use_acl=False, drop_path_rate=0.1),
    's': dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), use_acl=False, drop_path_rate=0.2),
    'b': dict(embed_dims=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), use_acl=False, drop_path_rate=0.3),
    'l': dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), use_acl=False, drop_path_rate=0.5),
}

CROSSFORMERPP_ARCHS = {
    's': dict(embed_dims=64, depths=(2, 2, 18, 2), num_heads=(2, 4, 8, 16), use_acl=True, drop_path_rate=0.2),
    'b': dict(embed_dims=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), use_acl=True, drop_path_rate=0.3),
    'l': dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), use_acl=True, drop_path_rate=0.5),
    'h': dict(embed_dims=128, depths=(6, 6, 18, 2), num_heads=(4, 8, 16, 32), use_acl=True, drop_path_rate=0.5),
}

#: Group size / interval of the released detectors and segmentors (the backbone default).
DENSE_GROUP_SIZE = (7, 7, 7, 7)
DENSE_INTERVAL = (8, 4, 2, 1)
#: Group size / interval the ImageNet classification checkpoints were trained with.
CLASSIFICATION_GEOMETRY = {
    'CrossFormer': dict(group_size=(7, 7, 7, 7), interval=(8, 4, 2, 1)),
    'CrossFormerPP': dict(group_size=(4, 4, 14, 7), interval=(4, 2, 1, 1)),
}


@register_model
class CrossFormer(MultiScaleBackbone):
    """CrossFormer backbone.

    A `PyTorch implementation of CrossFormer: A Versatile Vision Transformer
    Hinging on Cross-scale Attention <https://arxiv.org/abs/2108.00154>`_ and
    `CrossFormer++ <https://arxiv.org/abs/2303.06908>`_ (see
    :class:`CrossFormerPP`).

    Each stage alternates short-distance attention (SDA, block index even: G×G
    windows) and long-distance attention (LDA, odd index: G×G tokens spaced
    ``I`` apart), with a dynamic position bias (DPB) and cross-scale
    embedding layers (CEL) as stem and downsampling.

    **Input sizes.** Any H, W >= 32 works. Stage ``i`` has
    ``floor(H / 2**(i + 2)) × floor(W / 2**(i + 2))`` tokens (the convolutions of
    the stem and the downsampling layers floor odd sizes). Maps are zero-padded
    at the bottom/right after ``norm1`` to whole groups and padded keys get a
    -1e6 logit bias, as in the reference.

    **Small maps.** When ``min(h, w) <= group_size`` the block attends globally:
    one group of all ``h × w`` tokens. The reference dense backbone computes
    the same thing as ``G = max(h, w)`` with padding and masked keys (masked
    keys get exactly zero weight, so the outputs agree), but also rewrites the
    block's configuration for every later input; here nothing is stored. For
    square maps this equals the reference classification rule
    (``G = min(h, w)``), which is every case of the released classification
    geometry. The 2021 code also used ``G = min(h, w)`` (for a non-square map:
    windows along the long side, not one group); the training sizes of the
    released v1 checkpoints never reach this case.

    **LDA generations** (``lda_version``):

    * ``2`` (default, current reference): groups of ``G × G`` tokens, stride
      ``I``; the map is padded to multiples of ``G·I``; the number of groups
      grows with the image.
    * ``1`` (2021 code, used to train the released COCO and ADE20K
      checkpoints): ``I × I`` groups of ``ceil(h/I) × ceil(w/I)`` tokens, stride
      ``I``; the map is padded to multiples of ``I``; groups grow with the
      image (at ``I = 1``: global attention). Its cost grows quadratically
      with the group size: at 2048×2048, stage 1 has groups of 4096 tokens.

    Both agree whenever ``h = G·I`` (e.g. 224×224 with the dense defaults).
    The released v1 checkpoints used G=(7, 7, 7, 7), I=(8, 4, 2, 1), except the
    Semantic FPN CrossFormer-S and -L ones: G=(14, 14, 7, 7), I=(16, 8, 2, 1).

    Args:
        arch (str | dict): ``'t'``, ``'s'``, ``'b'`` or ``'l'`` (for
            :class:`CrossFormerPP`: ``'s'``, ``'b'``, ``'l'``, ``'h'``), or a dict
            with ``embed_dims``, ``depths``, ``num_heads`` and optionally
            ``use_acl`` (default False) and ``drop_path_rate`` (default 0).
            Defaults to ``'s'``.
        in_channels (int): Input channels. Defaults to 3.
        out_indices (Sequence[int]): Stages to output, each the stage output
            before its downsampling, NCHW. Defaults to (0, 1, 2, 3).
        group_size (Sequence[int]): Group size G per stage. Defaults to
            (7, 7, 7, 7), the released detectors/segmentors; the ImageNet
            checkpoints of CrossFormer++ use (4, 4, 14, 7)
            (:data:`CLASSIFICATION_GEOMETRY`).
        interval (Sequence[int]): LDA interval I per stage. Defaults to
            (8, 4, 2, 1); CrossFormer++ ImageNet: (4, 2, 1, 1).
        lda_version (int): 1 or 2, see above. Defaults to 2.
        use_acl (bool, optional): Amplitude cooling layers after blocks
            ``i`` with ``(i + 1) % 3 == 0`` except each stage's last block.
            None takes the arch's (True for CrossFormer++). Defaults to None.
        mlp_ratio (float | Sequence[float]): MLP hidden width ratio, one or
            one per stage. Defaults to 4.
        drop_path_rate (float, optional): Stochastic depth, rising linearly
            over the blocks. None takes the arch's reference value.
            Defaults to None.
        final_norm (bool): Add the classification model's LayerNorm ``norm``
            on the last stage's output (for an mmpretrain classifier with
            ``out_indices=(3, )``). Defaults to False.
        out_norms (bool): Add a LayerNorm ``norm{i}`` on each output; the
            released checkpoints have none, so these start untrained.
            Defaults to False.
        frozen_stages (int): Freeze the stem and this many stages (-1: none).
            Defaults to -1.
        norm_eval (bool): Keep BatchNorm layers in eval mode (there are none
            in CrossFormer; kept for a uniform interface). Defaults to False.
        with_cp (bool | str): Activation checkpointing of each block: ``True``,
            ``'selective'`` or ``False`` (see :class:`MultiScaleBackbone`). Defaults to False.
        compile (bool | dict): Compile each block with ``torch.compile``
            (see :class:`MultiScaleBackbone`). Defaults to False.
        init_cfg (dict, optional): By the rule of :class:`MultiScaleBackbone`;
            ``dict(type='Pretrained', checkpoint=FILE)`` loads released classification files, whole mmdet/mmseg models
            (their ``backbone.*``) or converted files; see
            :func:`convert_crossformer_state_dict`. Defaults to None.

    Example:
        >>> import torch
        >>> model = CrossFormer(arch='t').eval()
        >>> [tuple(o.shape) for o in model(torch.rand(1, 3, 224, 224))]
        [(1, 64, 56, 56), (1, 128, 28, 28), (1, 256, 14, 14), (1, 512, 7, 7)]
    """

    arch_zoo: Dict[str, dict] = CROSSFORMER_ARCHS
    essential_keys = ('embed_dims', 'depths', 'num_heads')
    # Unpadded strided convolutions floor odd sizes; the fourth stage (stride
    # 32) must keep at least one row.
    size_rounding = 'floor'
    min_input_size = 32

    def __init__(self,
                 arch: Union[str, dict] = 's',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 group_size: Sequence[int] = DENSE_GROUP_SIZE,
                 interval: Sequence[int] = DENSE_INTERVAL,
                 lda_version: int = 2,
                 use_acl: Optional[bool] = None,
                 mlp_ratio: Union[float, Sequence[float]] = 4.,
                 drop_path_rate: Optional[float] = None,
                 final_norm: bool = False,
                 out_norms: bool = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: Union[bool, str] = False,
                 compile: Union[bool, dict] = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(in_channels=in_channels, out_indices=out_indices, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, with_cp=with_cp, compile=compile, init_cfg=init_cfg)
        owner = type(self).__name__
        arch = resolve_arch(arch, self.arch_zoo, self.essential_keys, owner)
        embed_dims = arch['embed_dims']
        if not isinstance(embed_dims, int) or isinstance(embed_dims, bool) or embed_dims < 1:
            raise ValueError(f'{owner}: embed_dims must be a positive int, got {embed_dims!r}')
        depths = check_per_stage(arch['depths'], 'depths', owner, self.num_stages)
        num_heads = check_per_stage(arch['num_heads'], 'num_heads', owner, self.num_stages)
        group_size = check_per_stage(group_size, 'group_size', owner, self.num_stages)
        interval = check_per_stage(interval, 'interval', owner, self.num_stages)
        mlp_ratio = check_per_stage(mlp_ratio, 'mlp_ratio', owner, self.num_stages, (int, float), allow_scalar=True)
        if lda_version not in (1, 2):
            raise ValueError(f'{owner}: lda_version must be 1 (2021 code, released COCO/ADE20K weights) '
                             f'or 2 (current code), got {lda_version!r}')
        dims = [embed_dims * 2**i for i in range(self.num_stages)]
        for dim, heads in zip(dims, num_heads):
            if dim % heads:
                raise ValueError(f'{owner}: stage width {dim} is not divisible by num_heads {heads}')
            if dim < 16:
                raise ValueError(f'{owner}: stage width {dim} is below 16, too narrow for the '
                                 'position-bias MLP (width C // 16)')
        if final_norm and out_norms and self.num_stages - 1 in self.out_indices:
            raise ValueError(f'{owner}: final_norm and out_norms would both normalise the last '
                             'stage; choose one')
        if final_norm and self.num_stages - 1 not in self.out_indices:
            raise ValueError(f'{owner}: final_norm normalises the last stage, which out_indices '
                             f'{self.out_indices} does not return')
        use_acl = check_type(arch.get('use_acl', False) if use_acl is None else use_acl, 'use_acl', owner, bool)
        check_type(final_norm, 'final_norm', owner, bool)
        check_type(out_norms, 'out_norms', owner, bool)
        if drop_path_rate is None:
            drop_path_rate = arch.get('drop_path_rate', 0.)
        check_rate(drop_path_rate, 'drop_path_rate', owner)

        self.embed_dims = embed_dims
        self.depths = depths
        self.num_heads = num_heads
        self.group_size = group_size
        self.interval = interval
        self.lda_version = lda_version
        self.use_acl = use_acl
        self.final_norm = final_norm
        self.out_norms = out_norms
        self.stage_channels = dims

        self.patch_embed = CrossScalePatchEmbed(in_channels, embed_dims)
        rates = drop_path_rates(drop_path_rate, depths)
        self.layers = nn.ModuleList(
            CrossFormerStage(
                dim=dims[i],
                depth=depths[i],
                num_heads=num_heads[i],
                group_size=group_size[i],
                interval=interval[i],
                lda_version=lda_version,
                mlp_ratio=mlp_ratio[i],
                drop_path_rates=rates[i],
                use_acl=use_acl,
                downsample=i < self.num_stages - 1,
                with_cp=with_cp) for i in range(self.num_stages))
        if out_norms:
            self.add_output_norms(nn.LayerNorm)
        self.norm = nn.LayerNorm(dims[-1]) if final_norm else None

    # -- MultiScaleBackbone hooks ---------------------------------------------
    @property
    def expected_extra_keys(self) -> Tuple[str, ...]:
        return ('head.*', ) if self.final_norm else ('head.*', 'norm.*')

    def stem_modules(self) -> List[nn.Module]:
        return [self.patch_embed]

    def blocks(self) -> List[nn.Module]:
        return [block for layer in self.layers for block in layer.blocks]

    def stage_modules(self, index: int) -> List[nn.Module]:
        modules = [self.layers[index]]
        if self.norm is not None and index == self.num_stages - 1:
            modules.append(self.norm)
        return modules

    def convert_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        # The released weights have no output norms: the base class keeps their initialisation.
        return convert_crossformer_state_dict(state_dict)

    def init_weights_from_scratch(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_init(module, std=.02, bias=0.)
            elif isinstance(module, nn.LayerNorm):
                constant_init(module, val=1., bias=0.)

    # -- forward ----------------------------------------------------------------
    def forward_stages(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.patch_embed(x)
        outs = []
        last = self.out_indices[-1]
        for i, stage in enumerate(self.layers[:last + 1]):
            x = stage(x)
            if i in self.out_indices:
                out = x
                if self.out_norms:
                    out = self.output_norm(i)(out)
                elif self.norm is not None and i == self.num_stages - 1:
                    out = self.norm(out)
                outs.append(out.permute(0, 3, 1, 2).contiguous())
            if i < last:
                x = stage.downsample(x)
        return tuple(outs)


@register_model
class CrossFormerPP(CrossFormer):
    """CrossFormer++ backbone: CrossFormer with amplitude cooling layers.

    Progressive group size is the per-stage ``group_size``; the ImageNet
    checkpoints use ``group_size=(4, 4, 14, 7), interval=(4, 2, 1, 1)``, the
    reference detectors and segmentors the defaults (7, 7, 7, 7) / (8, 4, 2, 1).
    Arches ``'s'``, ``'b'``, ``'l'``, ``'h'``; all arguments as :class:`CrossFormer`.
    """

    arch_zoo = CROSSFORMERPP_ARCHS


def convert_crossformer_state_dict(state_dict: Mapping[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Map any supported CrossFormer checkpoint to this project's keys.

    Accepted formats (detected from the keys):

    * released classification weights (the ``'model'`` entry of the file, the
      reference key names, with or without the old persistent
      ``attn.biases`` / ``attn.relative_position_index`` buffers);
    * a whole mmdet / mmseg / mmpretrain model (keys under ``backbone.``; the
      released v1 COCO and ADE20K files): the backbone is kept, and an
      mmpretrain ``head.fc.*`` becomes ``head.*``;
    * this project's format, which *is* the reference layout.

    ``norm.*`` (the classification final norm) and ``head.*`` are kept: a
    backbone ignores them, a classifier uses them.
    """
    if any(key.startswith('backbone.') for key in state_dict):
        print_log('CrossFormer checkpoint: a whole model; taking its backbone.', logger='current',
                  level=logging.DEBUG)
        state_dict = from_whole_model_state_dict(state_dict)
    return OrderedDict((key, value) for key, value in state_dict.items()
                       if not key.endswith(OBSOLETE_BUFFER_SUFFIXES))


def _cross_scale_dims(out_dims: int, num_kernels: int) -> List[int]:
    """Channels of each kernel of a CEL: halving with the kernel size, the
    largest kernel gets as many as the one before (e.g. 96 -> 48, 24, 12, 12)."""
    return [out_dims // 2**(i + 1) for i in range(num_kernels - 1)] + [out_dims // 2**(num_kernels - 1)]


class CrossScalePatchEmbed(nn.Module):
    """The stem CEL: 4/8/16/32 kernels at stride 4, concatenated, then LayerNorm.

    Returns a channels-last ``(B, H/4, W/4, C)`` map (sizes floored).
    """

    kernel_sizes = (4, 8, 16, 32)
    stride = 4

    def __init__(self, in_channels: int, embed_dims: int) -> None:
        super().__init__()
        self.projs = nn.ModuleList(
            nn.Conv2d(in_channels, dims, kernel_size=k, stride=self.stride, padding=(k - self.stride) // 2)
            for k, dims in zip(self.kernel_sizes, _cross_scale_dims(embed_dims, len(self.kernel_sizes))))
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Outside autocast: cuDNN has no fast bf16 kernel for these 3-channel,
        # large-kernel convs (docs/benchmarks/README.md, "Levers"), and the
        # image is fp32 anyway.
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = torch.cat([proj(x.to(proj.weight.dtype)) for proj in self.projs], dim=1)
        return self.norm(x.permute(0, 2, 3, 1))


class CrossScaleMerging(nn.Module):
    """The downsampling CEL: LayerNorm, then 2/4 kernels at stride 2, concatenated.

    ``(B, H, W, C)`` to ``(B, H/2, W/2, 2C)`` (odd sizes floored; both kernels
    give the same size). No norm after the concatenation, as the reference.
    """

    kernel_sizes = (2, 4)
    stride = 2

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reductions = nn.ModuleList(
            nn.Conv2d(dim, dims, kernel_size=k, stride=self.stride, padding=(k - self.stride) // 2)
            for k, dims in zip(self.kernel_sizes, _cross_scale_dims(2 * dim, len(self.kernel_sizes))))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x).permute(0, 3, 1, 2)
        x = torch.cat([reduction(x) for reduction in self.reductions], dim=1)
        return x.permute(0, 2, 3, 1)


class CrossFormerStage(nn.Module):
    """``depth`` blocks alternating SDA (even index) and LDA (odd index), and
    the downsampling CEL ``downsample`` that leads to the next stage (all
    stages but the last).

    ``forward`` runs the blocks only: their output is the stage's feature; the
    backbone applies ``downsample`` when a later stage is needed.
    """

    def __init__(self,
                 dim: int,
                 depth: int,
                 num_heads: int,
                 group_size: int,
                 interval: int,
                 lda_version: int,
                 mlp_ratio: float,
                 drop_path_rates: Sequence[float],
                 use_acl: bool,
                 downsample: bool,
                 with_cp: Union[bool, str] = False) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.blocks = nn.ModuleList(
            CrossFormerBlock(
                dim=dim,
                num_heads=num_heads,
                group_size=group_size,
                interval=interval,
                long_distance=i % 2 == 1,
                lda_version=lda_version,
                mlp_ratio=mlp_ratio,
                drop_path_rate=drop_path_rates[i],
                # As the reference: after every third block, but never after a stage's last one.
                use_acl=use_acl and (i + 1) % 3 == 0 and i < depth - 1) for i in range(depth))
        self.downsample = CrossScaleMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The SDA and the LDA blocks of a stage each share one grouping and padding mask.
        layouts = {}
        for block in self.blocks:
            attn = block.attn
            if attn.long_distance not in layouts:
                layouts[attn.long_distance] = attn.layout(x.shape[1:3], x.device)
            x = maybe_checkpoint(block, x, layouts[attn.long_distance], with_cp=self.with_cp)
        return x


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

    def forward(self, x: torch.Tensor, layout: Optional[GroupLayout] = None) -> torch.Tensor:
        """``(B, H, W, C)`` in and out; ``layout`` is :meth:`LongShortDistanceAttention.layout` of the map."""
        x = x + self.drop_path(self.attn(self.norm1(x), layout))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        if self.ex_conv is not None:
            x = self.ex_ln(self.ex_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
        return x


def lsda_layout(size: Pair,
                group_size: int,
                interval: int,
                long_distance: bool,
                lda_version: int,
                device: Optional[torch.device] = None) -> GroupLayout:
    """The groups one LSDA block forms on an ``(h, w)`` map, padded keys biased by -1e6.

    * ``min(h, w) <= group_size``: one global group of ``h × w`` tokens.
    * SDA: ``G × G`` windows, padded to multiples of ``G``.
    * LDA: :meth:`GroupLayout.long_distance` (v2: ``G × G`` tokens spaced ``I``
      apart; v1: ``I × I`` groups of ``ceil(h/I) × ceil(w/I)`` tokens).
    """
    h, w = size
    if h <= group_size or w <= group_size:  # not min(): symbolic sizes then branch on each axis alone
        return GroupLayout.whole_map((h, w))
    if not long_distance:
        return GroupLayout.windows((h, w), (group_size, group_size), PADDED_KEY_BIAS, device)
    return GroupLayout.long_distance((h, w), group_size, interval, lda_version, PADDED_KEY_BIAS, device)


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

    def mlp_parameters(self) -> List[torch.Tensor]:
        """The MLP's tensors in :func:`dpb_mlp`'s order (weight, bias of each Linear; LayerNorm's before it)."""
        params = [self.pos_proj.weight, self.pos_proj.bias]
        for seq in (self.pos1, self.pos2, self.pos3):
            params += [seq[0].weight, seq[0].bias, seq[2].weight, seq[2].bias]
        return params

    def bias_for_group(self, group: Pair, device: torch.device) -> torch.Tensor:
        """The ``(num_heads, N, N)`` bias of a ``group[0] × group[1]`` group (a strided view).

        The MLP runs once on the ``(2·gh−1)(2·gw−1)`` distinct offsets (not on
        the N² pairs); the result is gathered per (query, key) pair.
        """
        offsets, index = _relative_offsets(group, device)
        # The table is small: run it outside autocast, so that offsets above 256 stay exact (bf16 would round them).
        with torch.autocast(device_type=device.type, enabled=False):
            # On CUDA one Triton kernel each way (layers/dpb_triton.py) instead of ~30 small ones.
            table = dpb_mlp(offsets.to(self.pos_proj.weight.dtype), self.mlp_parameters())  # (R, heads)
        return table[index].permute(2, 0, 1)


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
    groups it (:func:`lsda_layout`), attends with the DPB bias plus a -1e6
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

    def layout(self, size: Pair, device: Optional[torch.device] = None) -> GroupLayout:
        return lsda_layout(tuple(size), self.group_size, self.interval, self.long_distance, self.lda_version, device)

    def forward(self, x: torch.Tensor, layout: Optional[GroupLayout] = None) -> torch.Tensor:
        """``(B, H, W, C)`` normalised map in and out; ``layout`` defaults to :meth:`layout` of it.

        While traced (``torch.compile`` / ``torch.export``) the attention builds
        its own layout from the input's shape: its sizes are then expressions of
        the map's size symbols (integers passed in would be symbols of their own,
        specialised at 0 and 1) and its masks are computed in the graph.
        """
        b, h, w, c = x.shape
        if torch.compiler.is_compiling() or layout is None:
            layout = self.layout((h, w), x.device)
        heads, d = self.num_heads, c // self.num_heads
        groups = layout.partition(x)  # (B·nG, N, C)
        num_groups, num_tokens = layout.num_groups, layout.num_tokens
        qkv = self.qkv(groups).view(b, num_groups, num_tokens, 3, heads, d).permute(3, 0, 1, 4, 2, 5)

        bias = self.pos.bias_for_group(layout.group, x.device)  # (heads, N, N) view, shared by all groups
        if layout.key_bias is None:
            # Groups as batch: the bias broadcasts over B·nG (q, k, v are views).
            shape = (3, b * num_groups, heads, num_tokens, d)
            bias = bias.contiguous()
        else:
            # Groups and heads share one axis so that the per-group mask broadcasts
            # over B only (one copy lays out q, k and v together).
            bias = (bias + layout.key_bias).reshape(num_groups * heads, num_tokens, num_tokens)
            shape = (3, b, num_groups * heads, num_tokens, d)
        q, k, v = qkv.reshape(shape).unbind(0)
        out = attention(q, k, v, bias=bias, scale=self.scale)
        # Heads back to channels and groups back to pixels in one copy.
        (hp, wp), (gh, gw), (ih, iw) = layout.padded_size, layout.group, layout.interval
        out = out.view(b, hp // (gh * ih), wp // (gw * iw), ih, iw, heads, gh, gw, d)
        out = out.permute(0, 1, 6, 3, 2, 7, 4, 5, 8).reshape(b, hp, wp, c)
        return self.proj(crop(out, (h, w)))
