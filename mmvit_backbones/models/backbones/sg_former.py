"""SG-Former: Self-guided Transformer with evolving token reallocation (Ren et al., ICCV 2023).

Written from a prose description of the released classification model
(``docs/sgformer.md``); the released code has no license, so none of it is
used here. Module and parameter names are those of the released
checkpoints (``pos_embed``, ``patch_embed1.conv.0.c.weight``,
``block1.0.attn.q1.weight``, ``norm1.weight`` ...), which makes them this
project's checkpoint format too: released files load without renaming.

Every stage but the last alternates two blocks:

* a **hybrid-scale** (HS) block: half of the heads attend globally to tokens
  merged ``sr x sr`` by a strided conv, the other half inside 7x7 windows. Its
  attention probabilities give a *significance map* (mean attention each token
  receives as a key, coarse + local);
* a **self-guided** (SG) block: the significance map sorts the tokens; the
  least significant quarter is merged many-to-one, the most significant quarter
  few-to-one (*reallocation*, see :func:`reallocation_plan`), and every query
  attends to the reallocated tokens.

The reference only runs at 224x224-like sizes. For dense prediction this file
follows the project's rules (``docs/sgformer.md``), all of which are the identity at
the reference's native sizes: the position embedding is resized, windows and the
coarse branch are padded (padded keys masked), and the reallocation pads a group
whose length is not a multiple of its merge rate (:func:`reallocation_plan`).
"""
import functools
import math
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model.weight_init import constant_init, normal_init, trunc_normal_init
from torch import nn

from ...checkpoint import from_whole_model_state_dict
from ...registry import register_model
from ..layers import (
    DropPath,
    GroupLayout,
    attention,
    attention_probs,
    attention_with_probs,
    drop_path_rates,
    fused_attention_enabled,
    maybe_checkpoint,
    nchw_to_nlc,
    nlc_to_nchw,
    pad_to_multiple,
)
from .base import MultiScaleBackbone, check_per_stage, check_rate, check_type, resolve_arch

Size = Tuple[int, int]

__all__ = ['SGFormer', 'convert_sgformer_state_dict', 'reallocation_plan', 'quantile_group_lengths',
           'key_token_shares', 'sincos_pos_embed']


@register_model
class SGFormer(MultiScaleBackbone):
    """SG-Former backbone for classification, detection and segmentation.

    A reimplementation of `SG-Former: Self-guided Transformer with Evolving
    Token Reallocation <https://arxiv.org/abs/2308.12216>`_ that loads the
    released ImageNet checkpoints as they are and runs at any input size.

    Args:
        arch (str | dict): ``'s'``, ``'m'``, ``'b'`` or a dict with keys
            ``embed_dims``, ``depths``, ``num_heads`` (four entries each;
            stages 1-3 need an even depth, since hybrid-scale and self-guided
            blocks come in pairs, and an even number of heads, half per
            hybrid-scale branch) and optionally ``mlp_ratio`` (default 4) and
            ``drop_path_rate``.
        in_channels (int): Input channels. Defaults to 3.
        out_indices (Sequence[int]): Stages whose outputs (after the stage
            norms ``norm1``..``norm4``, NCHW) are returned. Defaults to all.
        drop_path_rate (float, optional): Stochastic depth rate, linearly
            increasing over blocks. ``None`` takes the value the arch was
            trained with: 0.1 / 0.2 / 0.4 for s / m / b (0.1 for a dict).
        pretrain_img_size (int): Image size the position embedding was trained
            at (a ``pretrain_img_size // 4`` square grid). Defaults to 224.
        stable_sort (bool): Break ties of the significance map by token
            position (``torch.sort(stable=True)``). The default, False, sorts
            exactly as the reference does (``torch.sort`` defaults), which
            reproduces it; see ``docs/sgformer.md`` for the trade-off.
        frozen_stages (int): Freeze the stem and position embedding (0) and
            the first ``frozen_stages`` stages. Defaults to -1 (nothing).
        norm_eval (bool): Keep BatchNorms in eval mode (SG-Former has none; kept
            for interface compatibility). Defaults to False.
        with_cp (bool | str): Activation checkpointing of every block: ``True``,
            ``'selective'`` or ``False`` (see :class:`MultiScaleBackbone`).
            Defaults to False.
        compile (bool | dict): Compile each block with ``torch.compile``
            (see :class:`MultiScaleBackbone`). Defaults to False.
        init_cfg (dict, optional): By the rule of :class:`MultiScaleBackbone`;
            ``dict(type='Pretrained', checkpoint=FILE)`` loads a released
            training file (``state_dict_ema`` preferred), a bare state dict,
            this project's files or a whole detector / segmentor / classifier
            (its ``backbone.*``). Defaults to None.

    Example:
        >>> import torch
        >>> model = SGFormer(arch='s').eval()
        >>> outs = model(torch.rand(1, 3, 224, 224))
        >>> [tuple(o.shape) for o in outs]
        [(1, 64, 56, 56), (1, 128, 28, 28), (1, 256, 14, 14), (1, 512, 7, 7)]
    """

    arch_zoo = {
        's': dict(embed_dims=[64, 128, 256, 512], depths=[2, 4, 16, 1], num_heads=[2, 4, 8, 16],
                  drop_path_rate=0.1),
        'm': dict(embed_dims=[64, 128, 256, 512], depths=[2, 6, 28, 2], num_heads=[2, 4, 8, 16],
                  drop_path_rate=0.2),
        'b': dict(embed_dims=[96, 192, 384, 768], depths=[4, 6, 24, 2], num_heads=[4, 6, 12, 24],
                  drop_path_rate=0.4),
    }
    essential_keys = ('embed_dims', 'depths', 'num_heads')
    #: Merge rate of the coarse hybrid-scale branch per stage (1: vanilla attention).
    sr_ratios = (8, 4, 2, 1)
    #: Tokens merged into one key, per significance group (least significant
    #: first), in the self-guided blocks of stages 1-3.
    merge_rates = ((196, 56, 28), (49, 14, 7), (2, 1))
    window_size = 7

    def __init__(self,
                 arch: Union[str, Dict] = 's',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_path_rate: Optional[float] = None,
                 pretrain_img_size: int = 224,
                 stable_sort: bool = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: Union[bool, str] = False,
                 compile: Union[bool, dict] = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(in_channels=in_channels, out_indices=out_indices, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, with_cp=with_cp, compile=compile, init_cfg=init_cfg)
        arch = resolve_arch(arch, self.arch_zoo, self.essential_keys, 'SGFormer')
        self.embed_dims, self.depths, self.num_heads = self._check_arch(arch)
        self.stage_channels = list(self.embed_dims)
        self.mlp_ratio = check_rate(arch.get('mlp_ratio', 4), "arch['mlp_ratio']", 'SGFormer', high=None)
        if drop_path_rate is None:
            drop_path_rate = arch.get('drop_path_rate', 0.1)
        check_rate(drop_path_rate, 'drop_path_rate', 'SGFormer')
        if check_type(pretrain_img_size, 'pretrain_img_size', 'SGFormer', int) < 4:
            raise ValueError(f'SGFormer: pretrain_img_size must be an int >= 4, got {pretrain_img_size!r}')
        self.drop_path_rate = drop_path_rate
        self.stable_sort = check_type(stable_sort, 'stable_sort', 'SGFormer', bool)
        self.pos_grid = (pretrain_img_size // 4, ) * 2

        # Registration order reproduces the released state_dict order.
        dims = self.embed_dims
        self.pos_embed = nn.Parameter(sincos_pos_embed(dims[0], self.pos_grid).unsqueeze(0))
        rates = drop_path_rates(drop_path_rate, self.depths)
        for i in range(self.num_stages):
            if i == 0:
                downsample = ConvStem(in_channels, dims[0])
            else:
                downsample = ConvDownsample(dims[i - 1], dims[i])
            self.add_module(f'patch_embed{i + 1}', downsample)
            blocks = nn.ModuleList(
                SGFormerBlock(
                    dims[i],
                    self.num_heads[i],
                    self._block_kind(i, j),
                    sr_ratio=self.sr_ratios[i],
                    merge_rates=self.merge_rates[i] if i < 3 else (),
                    window_size=self.window_size,
                    mlp_ratio=self.mlp_ratio,
                    drop_path=rates[i][j],
                    stable_sort=stable_sort) for j in range(self.depths[i]))
            self.add_module(f'block{i + 1}', blocks)
            self.add_module(f'norm{i + 1}', nn.LayerNorm(dims[i], eps=1e-6))

    @staticmethod
    def _check_arch(arch: Mapping) -> Tuple[List[int], List[int], List[int]]:
        dims, depths, heads = (check_per_stage(arch[key], f'arch[{key!r}]', 'SGFormer', SGFormer.num_stages)
                               for key in SGFormer.essential_keys)
        for i in range(4):
            if dims[i] % heads[i]:
                raise ValueError(f'SGFormer: stage {i + 1} embed_dims {dims[i]} is not divisible by '
                                 f'its num_heads {heads[i]}')
            if i < 3 and (heads[i] % 2 or depths[i] % 2):
                raise ValueError(f'SGFormer: stage {i + 1} needs an even num_heads (two hybrid-scale '
                                 f'branches) and an even depth (hybrid-scale / self-guided pairs), got '
                                 f'num_heads={heads[i]}, depth={depths[i]}')
        if dims[0] % 4:
            raise ValueError(f'SGFormer: embed_dims[0] must be divisible by 4 (sin-cos position '
                             f'embedding), got {dims[0]}')
        return dims, depths, heads

    @staticmethod
    def _block_kind(stage: int, index: int) -> str:
        if stage == 3:
            return 'global'
        return 'hybrid' if index % 2 == 0 else 'guided'

    # -- MultiScaleBackbone hooks ---------------------------------------------
    def stem_modules(self) -> List[nn.Module]:
        return [self.patch_embed1]

    def blocks(self) -> List[nn.Module]:
        return [block for i in range(self.num_stages) for block in getattr(self, f'block{i + 1}')]

    def stage_modules(self, index: int) -> List[nn.Module]:
        stage = index + 1
        modules = [getattr(self, f'block{stage}'), getattr(self, f'norm{stage}')]
        if index > 0:
            modules.insert(0, getattr(self, f'patch_embed{stage}'))
        return modules

    def stem_parameters(self) -> List[nn.Parameter]:
        return [self.pos_embed]  # the position embedding belongs to the stem

    def convert_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
        state_dict = convert_sgformer_state_dict(state_dict)
        pos_embed = state_dict.get('pos_embed')
        if pos_embed is not None and pos_embed.dim() == 3 and pos_embed.shape[1] != math.prod(self.pos_grid):
            side = math.isqrt(pos_embed.shape[1])
            if side * side == pos_embed.shape[1]:  # a square grid of another size: resize it
                state_dict['pos_embed'] = resize_pos_embed(pos_embed, (side, side), self.pos_grid)
        return state_dict

    def init_weights_from_scratch(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_init(module, std=.02, bias=0.)
            elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
                constant_init(module, val=1., bias=0.)
            elif isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
                normal_init(module, mean=0., std=math.sqrt(2. / fan_out), bias=0.)
        with torch.no_grad():
            self.pos_embed.copy_(sincos_pos_embed(self.embed_dims[0], self.pos_grid).unsqueeze(0))

    # -- forward -----------------------------------------------------------
    def forward_stages(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs, _ = self._forward(x, keep_significance=False)
        return outs

    def forward_with_significance(self, x: torch.Tensor) -> Tuple[Tuple[torch.Tensor, ...], List[torch.Tensor]]:
        """Like :meth:`forward`, also returning the significance maps.

        Returns:
            tuple: the outputs of :meth:`forward` and, for stages 1-3, the
            significance map ``(B, H_i, W_i)`` of the stage's last hybrid-scale
            block: the one that guided the stage's last reallocation.
        """
        self.check_input(x)
        return self._forward(x, keep_significance=True)

    def _forward(self, x: torch.Tensor,
                 keep_significance: bool) -> Tuple[Tuple[torch.Tensor, ...], List[torch.Tensor]]:
        outs, maps = [], []
        for i in range(self.num_stages):
            x, size = getattr(self, f'patch_embed{i + 1}')(x)  # NCHW map to tokens
            if i == 0:
                x = x + self._pos_embed_at(size)
            significance = kept = None
            for block in getattr(self, f'block{i + 1}'):
                x, significance = maybe_checkpoint(block, x, size, significance, with_cp=self.with_cp)
                if significance is not None:
                    kept = significance
            x = nlc_to_nchw(getattr(self, f'norm{i + 1}')(x), size).contiguous()
            if i in self.out_indices:
                outs.append(x)
            if keep_significance and i < 3:
                maps.append(kept.unflatten(1, size))
        return tuple(outs), maps

    def _pos_embed_at(self, size: Size) -> torch.Tensor:
        """The position embedding for a stage-1 map of ``size`` (bicubic resize).

        Resized on every call, not cached: it is one interpolation of a small
        table, and a cache cannot see every weight update (``.data`` writes and
        ``load_state_dict(assign=True)``, as EMA hooks do, bypass the version
        counter), nor belong in a traced or exported graph.
        """
        if tuple(size) == self.pos_grid:
            return self.pos_embed
        return resize_pos_embed(self.pos_embed, self.pos_grid, size)


# ---------------------------------------------------------------------------
# Stem, downsampling, blocks
# ---------------------------------------------------------------------------
class SingleGroupNorm(nn.GroupNorm):
    """``nn.GroupNorm(1, C)`` (normalises C, H, W per sample), fast on large maps.

    PyTorch's GroupNorm kernel reduces each (sample, group) row inside one
    thread block, so with one group a large map keeps most of the GPU idle
    (measured: ``docs/benchmarks/README.md``, "SG-Former ``SingleGroupNorm``").
    ``torch.var_mean`` spreads the reduction over the device; the
    normalisation is one fused scale and shift.
    Same parameters and result (statistics in at least float32; under autocast
    the output is float32, as CUDA autocast makes ``group_norm``'s).
    """

    def __init__(self, num_channels: int, eps: float = 1e-5) -> None:
        super().__init__(1, num_channels, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        autocast = x.device.type != 'meta' and torch.is_autocast_enabled(x.device.type)
        x32 = x.to(torch.promote_types(x.dtype, torch.float32))  # float64 stays float64
        var, mean = torch.var_mean(x32.flatten(1), dim=1, correction=0)
        per_sample = (-1, ) + (1, ) * (x.dim() - 1)
        per_channel = (1, -1) + (1, ) * (x.dim() - 2)
        scale = self.weight.to(x32.dtype).view(per_channel) * torch.rsqrt(var + self.eps).view(per_sample)
        shift = self.bias.to(x32.dtype).view(per_channel) - mean.view(per_sample) * scale
        out = torch.addcmul(shift, x32, scale)
        return out if autocast else out.to(x.dtype)


class ConvGN(nn.Sequential):
    """Conv2d without bias, then GroupNorm with one group (normalises C, H, W).

    The submodule names ``c`` and ``bn`` are the released checkpoint's (the
    norm was called ``bn`` although it is a GroupNorm).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__()
        self.c = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                           bias=False)
        self.bn = SingleGroupNorm(out_channels)


class ConvStem(nn.Module):
    """Stage-1 patch embedding (``patch_embed1``): three 3x3 conv-GN, stride 4 in all.

    GELU follows the first two units; tokens are LayerNorm-ed (eps 1e-5).
    No padding beyond the convs' own: the GroupNorms see the whole map.
    """

    def __init__(self, in_channels: int, embed_dims: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            ConvGN(in_channels, embed_dims, 3, stride=2), nn.GELU(),
            ConvGN(embed_dims, embed_dims, 3), nn.GELU(),
            ConvGN(embed_dims, embed_dims, 3, stride=2))
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Size]:
        x = self.conv(x)
        size = (x.shape[2], x.shape[3])
        return self.norm(nchw_to_nlc(x)), size


class ConvDownsample(nn.Module):
    """Stride-2 downsampling between stages (``patch_embed2..4``).

    1x1 conv-GN, GELU, depthwise 3x3 stride-2 conv-GN, GELU, 1x1 conv-GN; no
    norm on the output tokens. ``(B, C_in, H, W)`` to ``ceil(H/2) x ceil(W/2)`` tokens.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvGN(in_channels, out_channels, 1)
        self.conv2 = ConvGN(out_channels, out_channels, 3, stride=2, groups=out_channels)
        self.conv3 = ConvGN(out_channels, out_channels, 1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Size]:
        x = self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))
        return nchw_to_nlc(x), (x.shape[2], x.shape[3])


class SGFormerBlock(nn.Module):
    """Pre-norm transformer block; one DropPath serves both residual branches.

    ``forward(x, size, significance)`` returns ``(x, significance)``: a
    hybrid-scale block produces a significance map, the self-guided block after
    it consumes it (and returns None), global blocks ignore it. Between blocks
    the map is flattened, ``(B, H·W)`` like the tokens: compiled with dynamic
    sizes, a ``(B, H, W)`` input's sides would be given the symbol of any other
    dimension of equal value (dynamo's duck sizing, e.g. the channels) and the
    graph would specialise on it.
    """

    def __init__(self, dim: int, num_heads: int, kind: str, sr_ratio: int, merge_rates: Sequence[int],
                 window_size: int, mlp_ratio: float, drop_path: float, stable_sort: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        if kind == 'hybrid':
            self.attn = HybridScaleAttention(dim, num_heads, sr_ratio, window_size)
        elif kind == 'guided':
            self.attn = SelfGuidedAttention(dim, num_heads, merge_rates, stable_sort)
        elif kind == 'global':
            self.attn = GlobalAttention(dim, num_heads)
        else:
            raise ValueError(f'unknown SG-Former block kind {kind!r}; valid: hybrid, guided, global')
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = DetailFFN(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, size: Size,
                significance: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        h, w = size
        if _tracing() and h > 1 and w > 1:
            # Compiled with dynamic sizes, h and w are symbols of their own beside the token count: tied here
            # (h, w >= 2 bound the product to a size's range), the token count becomes h·w and every size an
            # expression of h and w, so no guard compares independent symbols and new sizes reuse the graph.
            # (Sizes of 1 are static in a compiled graph; eager mode checks the sizes where it uses them.)
            torch._check(h >= 2)
            torch._check(w >= 2)
            torch._check(x.shape[1] == h * w)
            if significance is not None:
                torch._check(significance.shape[1] == h * w)
        if significance is not None:
            significance = significance.view(x.shape[0], h, w)
        out, significance = self.attn(self.norm1(x), size, significance)
        x = x + self.drop_path(out)
        x = x + self.drop_path(self.mlp(self.norm2(x), size))
        if significance is not None:
            significance = significance.flatten(1)
            if _tracing():  # a fresh tensor: a view's base would be an input of the next compiled block too
                significance = significance.clone()
        return x, significance


class DepthwiseConv(nn.Module):
    """Depthwise 3x3 conv (with bias) applied to tokens laid out as a map."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor, size: Size) -> torch.Tensor:
        return nchw_to_nlc(self.dwconv(nlc_to_nchw(x, size)))


class DetailFFN(nn.Module):
    """FFN with a depthwise conv inside the activation: ``fc2(GELU(h + dwconv(h)))``, ``h = fc1(x)``."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = DepthwiseConv(hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, size: Size) -> torch.Tensor:
        h = self.fc1(x)
        return self.fc2(self.act(h + self.dwconv(h, size)))


# ---------------------------------------------------------------------------
# Attention
# ---------------------------------------------------------------------------
class LePEAttention(nn.Module):
    """Base of the SG-Former attentions: their common output layers.

    Every attention ends with ``proj(attn_out + lepe_conv(lepe_linear(x)))``:
    ``x`` is the attention's (normed) input and the Linear + depthwise 3x3 conv
    term a locally-enhanced positional encoding. Subclasses call
    :meth:`add_output_layers` after their own layers (the released key order).
    ``lepe_linear`` runs inside the subclass's one projection of ``x``
    (:func:`_joint_linear`); :meth:`project` takes its output.
    """

    def add_output_layers(self, dim: int) -> None:
        self.lepe_linear = nn.Linear(dim, dim)
        self.lepe_conv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.proj = nn.Linear(dim, dim)

    def project(self, attn_out: torch.Tensor, lepe_in: torch.Tensor, size: Size) -> torch.Tensor:
        """``proj(attn_out + lepe_conv(lepe_in))``; both ``(B, N, C)``, ``lepe_in`` = ``lepe_linear(x)``."""
        lepe = nchw_to_nlc(self.lepe_conv(nlc_to_nchw(lepe_in, size)))
        return self.proj(attn_out + lepe)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the next linear computes in: autocast's when it is on for ``x``'s device, else ``x``'s."""
    if x.device.type != 'meta' and torch.is_autocast_enabled(x.device.type) and x.is_floating_point():
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def _joint_linear(x: torch.Tensor, layers: Sequence[nn.Linear]) -> torch.Tensor:
    """Several ``nn.Linear`` of the same input as one matrix product; their outputs side by side.

    The weights are concatenated on each call (the parameters and their names stay
    those of the separate layers): one GEMM, one weight cast under autocast and
    one backward instead of one of each per layer. Each output element is the
    same dot product as the layer's own.
    """
    weight = torch.cat([layer.weight for layer in layers])
    bias = torch.cat([layer.bias for layer in layers])
    return F.linear(x, weight, bias)


def _crop(x: torch.Tensor, size: Size) -> torch.Tensor:
    """The top-left ``size`` of a padded ``(B, Hp, Wp, ...)`` map: a view in eager mode.

    While tracing (compile, export) a gather of the rows and columns: a slice is a view, contiguous only where
    nothing was cropped, and the ops after it would branch on that (a graph per padding pattern, an export
    that holds only for sizes padded like the example's); compiled, the gather fuses.
    """
    if not _tracing():
        return x[:, :size[0], :size[1]]
    rows, cols = (torch.arange(length, device=x.device) for length in size)
    return x.index_select(1, rows).index_select(2, cols)


def _significance_dtype(dtype: torch.dtype) -> torch.dtype:
    """Significance is reduced and sorted in at least float32 (float64 stays float64)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class HybridScaleAttention(LePEAttention):
    """Hybrid-scale attention; also returns the significance map.

    Half of the heads (``q1``/``kv1``) attend to all tokens merged by a stride
    ``sr`` conv (then LayerNorm, GELU): coarse and global. The other half
    (``q2``/``kv2``) attend inside non-overlapping ``window_size`` windows.

    The significance of a token is the mean (over heads, then queries) of the
    attention it receives as a key in its window, plus the same mean of the
    coarse attention received by its merged token. For maps that do not tile,
    the windows are padded bottom/right with masked keys (padded queries leave
    the query mean) and the coarse branch's input is zero-padded to a multiple
    of ``sr``; outputs and significance are cropped back.

    The significance needs the attention probabilities, which the reference
    materialises and differentiates through. Here the outputs come from the
    fused kernel and the probabilities from a second, gradient-free softmax
    (:func:`_attend_and_weigh`): the same values, and nothing of size
    queries x keys is kept for backward. For few host-side ops per block (eager
    mode is host-bound on a GPU): ``q2``, ``kv2``, ``q1`` and ``lepe_linear``
    are one matrix product of ``x`` (cast once under autocast), the windows of
    queries, keys and values are cut in one copy, and each significance is one
    reduction over heads and queries.
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, window_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.sr_ratio = sr_ratio
        self.window_size = window_size
        self.sr = nn.Conv2d(dim, dim, sr_ratio, sr_ratio)
        self.norm = nn.LayerNorm(dim)
        self.act = nn.GELU()
        self.q1 = nn.Linear(dim, dim // 2)
        self.kv1 = nn.Linear(dim, dim)
        self.q2 = nn.Linear(dim, dim // 2)
        self.kv2 = nn.Linear(dim, dim)
        self.add_output_layers(dim)

    def forward(self, x: torch.Tensor, size: Size,
                significance: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        b, n, c = x.shape
        h, w = size
        x = x.to(_compute_dtype(x))  # one cast for the five consumers of x under autocast
        # (q2 | kv2) first: the local branch windows one contiguous block of columns.
        joint = _joint_linear(x, (self.q2, self.kv2, self.q1, self.lepe_linear))
        local_qkv, q_coarse, lepe_in = joint.split([c * 3 // 2, c // 2, c], dim=-1)
        coarse, coarse_significance = self._coarse(x, q_coarse, size)
        local_map, local_significance = self._local(local_qkv, size)
        attn_out = torch.cat([coarse.view(b, h, w, c // 2), _crop(local_map, size)], dim=-1).view(b, n, c)
        return self.project(attn_out, lepe_in, size), local_significance + coarse_significance

    def _coarse(self, x: torch.Tensor, q: torch.Tensor, size: Size) -> Tuple[torch.Tensor, torch.Tensor]:
        b, n, c = x.shape
        h, w = size
        heads, d, sr = self.num_heads // 2, self.head_dim, self.sr_ratio
        q = q.reshape(b, n, heads, d).transpose(1, 2)
        padded, (pad_h, pad_w) = pad_to_multiple(x.view(b, h, w, c), (sr, sr))
        merged = self.sr(padded.permute(0, 3, 1, 2))
        coarse_size = merged.shape[2:]
        merged = self.act(self.norm(nchw_to_nlc(merged)))
        k, v = self.kv1(merged).reshape(b, -1, 2, heads, d).permute(2, 0, 3, 1, 4)
        out, probs = _attend_and_weigh(q, k, v, None, d**-0.5)
        # Attention received by each coarse key: mean over heads and queries, in one reduction.
        received = probs.mean((1, 2), dtype=_significance_dtype(probs.dtype)).view(b, 1, *coarse_size)
        received = F.interpolate(received, size=(h + pad_h, w + pad_w), mode='nearest')
        return out.transpose(1, 2).reshape(b, n, c // 2), _crop(received[:, 0], size)

    def _local(self, qkv: torch.Tensor, size: Size) -> Tuple[torch.Tensor, torch.Tensor]:
        """Window attention of ``qkv`` = (q2 | kv2)(x); the output map (padded size) and significance."""
        b, n, _ = qkv.shape
        h, w = size
        heads, d = self.num_heads // 2, self.head_dim
        layout = GroupLayout.sg_local_windows(size, self.window_size, qkv.device)
        windows, tokens = layout.num_groups, layout.num_tokens
        # One copy cuts q, k and v into windows, windows folded into the head axis.
        q, k, v = layout.partition_heads(qkv.view(b, h, w, -1), heads, d)
        key_bias = None
        if layout.key_bias is not None:
            key_bias = layout.key_bias.to(q.dtype).expand(windows, heads, 1, tokens).reshape(
                windows * heads, 1, tokens)
        out, probs = _attend_and_weigh(q, k, v, key_bias, d**-0.5)
        out = layout.reverse_heads(out, heads)

        # Attention received by each key: mean over heads and the window's real queries, in one reduction.
        dtype = _significance_dtype(probs.dtype)
        if layout.query_mask is None:
            received = probs.view(b, windows, heads * tokens, tokens).mean(2, dtype=dtype)
        else:
            real = layout.query_mask.to(dtype)
            query_weights = real / (real.sum(1, keepdim=True) * heads)  # (windows, queries)
            probs = probs.view(b, windows, heads, tokens, tokens)
            received = (probs * query_weights[:, None, :, None]).sum((2, 3), dtype=dtype)
        return out, _crop(layout.reverse_values(received), size)


class SelfGuidedAttention(LePEAttention):
    """Self-guided attention: all queries attend to significance-reallocated tokens.

    The significance map, flattened row-major and column-major, is sorted twice
    (ascending). In each order the tokens (of ``x`` flattened the same way) are
    cut into quantile groups and runs of ``r`` tokens of a group merge into one
    key token through ``Linear(r, 1)`` over the token axis (``f1``, ``f2``,
    ``f3``, shared by both orders): see :func:`reallocation_plan`. ``kv1``
    projects the row-major sequence for the first half of the heads, ``kv2``
    the column-major one for the second half. Both orders give the same
    sequence up to ties of the significance.

    Both orders run as one batch (:meth:`reallocate_both`): one sort, one
    gather and one merge per group, then ``kv1`` and ``kv2`` as one batched
    matrix product; ``q`` and ``lepe_linear`` are one matrix product of ``x``.
    """

    def __init__(self, dim: int, num_heads: int, merge_rates: Sequence[int], stable_sort: bool = False) -> None:
        super().__init__()
        if len(merge_rates) not in GROUP_SHARES:
            raise ValueError(f'SelfGuidedAttention: {len(merge_rates)} merge rates given; valid group counts '
                             f'are {sorted(GROUP_SHARES)}')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.merge_rates = tuple(merge_rates)
        self.stable_sort = stable_sort
        self.q = nn.Linear(dim, dim)
        self.kv1 = nn.Linear(dim, dim)
        self.kv2 = nn.Linear(dim, dim)
        for g, rate in enumerate(self.merge_rates):
            self.add_module(f'f{g + 1}', nn.Linear(rate, 1))
        self.add_output_layers(dim)

    def forward(self, x: torch.Tensor, size: Size,
                significance: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, None]:
        if significance is None:
            raise ValueError('SelfGuidedAttention needs the significance map of the hybrid-scale block before it')
        b, n, c = x.shape
        heads, d = self.num_heads // 2, self.head_dim
        x = x.to(_compute_dtype(x))  # one cast for q, lepe_linear and the reallocation under autocast
        q, lepe_in = _joint_linear(x, (self.q, self.lepe_linear)).split([c, c], dim=-1)
        q = q.reshape(b, n, self.num_heads, d).transpose(1, 2)
        keys = self.reallocate_both(x, significance)  # (2, B, M, C): row-major, column-major
        m = keys.shape[2]
        weight = torch.stack([self.kv1.weight, self.kv2.weight]).transpose(1, 2)
        bias = torch.stack([self.kv1.bias, self.kv2.bias]).unsqueeze(1)
        kv = torch.baddbmm(bias, keys.reshape(2, b * m, c), weight)  # kv1 on the rows, kv2 on the columns
        # (order, B, M, k|v, heads, d) -> k, v of (B, order·heads, M, d): kv1's heads first.
        k, v = kv.view(2, b, m, 2, heads, d).permute(3, 1, 0, 4, 2, 5).reshape(2, b, 2 * heads, m, d)
        out = attention(q, k, v, scale=d**-0.5)
        return self.project(out.transpose(1, 2).reshape(b, n, c), lepe_in, size), None

    def reallocate(self, x: torch.Tensor, significance: torch.Tensor) -> torch.Tensor:
        """Merge the tokens ``x`` ``(B, N, C)`` by their ``significance`` ``(B, N)`` (one order).

        Returns:
            Tensor: ``(B, M, C)`` key tokens, least significant group first.
        """
        b, n = significance.shape
        rows = self._sort(significance) + torch.arange(0, b * n, n, device=x.device).view(b, 1)
        return self._merge(x, rows.t().unsqueeze(1))[0]

    def reallocate_both(self, x: torch.Tensor, significance: torch.Tensor) -> torch.Tensor:
        """The row-major and column-major reallocations of ``x`` ``(B, N, C)`` by a ``(B, H, W)`` map.

        Returns:
            Tensor: ``(2, B, M, C)``: the keys of the row-major order, then of the column-major one.
        """
        b, h, w = significance.shape
        n = h * w
        flattenings, rows_by_position = reallocation_tables(b, h, w, x.device)
        # Both flattenings in one gather, (B, 2, N); each row sorted as before.
        order = self._sort(significance.reshape(b, n).index_select(1, flattenings).view(b, 2, n))
        # One gather turns the positions of both orders into rows of x as (B·N, C), slot-major (N, 2, B).
        return self._merge(x, rows_by_position.gather(0, order.permute(2, 1, 0)))

    def _sort(self, significance: torch.Tensor) -> torch.Tensor:
        if self.stable_sort:
            return torch.sort(significance, dim=-1, stable=True)[1]
        return torch.sort(significance, dim=-1)[1]  # the reference's call: torch.sort defaults

    def _merge(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Key tokens ``(S, B, M, C)`` of ``x`` ``(B, N, C)`` merged along ``rows`` ``(N, S, B)``: for each
        position of the ascending order(s), the sorted token's row of ``x`` as ``(B·N, C)``."""
        n, s, b = rows.shape
        c = x.shape[-1]
        plan = reallocation_plan(n, self.merge_rates)
        if plan.padded:
            rows = rows[plan.positions_on(rows.device)]
        # Slot-major (slots, S, B, C): each group's runs are contiguous (count, rate, S·B·C) blocks.
        tokens = x.reshape(b * n, c)[rows]
        # The weights and biases of f1..f3 in x's dtype (w1, b1, w2, b2, ...): under autocast cast together.
        merge_params = [t for g in range(len(self.merge_rates)) for t in (getattr(self, f'f{g + 1}').weight,
                                                                           getattr(self, f'f{g + 1}').bias)]
        if merge_params[0].dtype != x.dtype:
            merge_params = torch.cat([t.reshape(-1) for t in merge_params]).to(x.dtype).split(
                [size for rate in self.merge_rates for size in (rate, 1)])
        merged = []
        # One Linear(r, 1) per group (at most three), each as one batched product over the group's runs.
        for g, (chunk, count) in enumerate(zip(tokens.split(plan.padded_lengths), plan.counts)):
            if count:
                rate = self.merge_rates[g]
                weight, bias = merge_params[2 * g], merge_params[2 * g + 1]
                merged.append(torch.baddbmm(bias.view(1, 1, 1), weight.view(1, 1, rate).expand(count, 1, rate),
                                            chunk.view(count, rate, s * b * c)))
        keys = torch.cat(merged) if len(merged) > 1 else merged[0]  # (M, 1, S·B·C)
        return keys.view(-1, s, b, c).permute(1, 2, 0, 3)


class GlobalAttention(LePEAttention):
    """Plain multi-head attention over all tokens (stage 4), with the LePE term.

    ``q``, ``kv`` and ``lepe_linear`` are one matrix product of ``x``.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.add_output_layers(dim)

    def forward(self, x: torch.Tensor, size: Size,
                significance: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, None]:
        b, n, c = x.shape
        heads, d = self.num_heads, self.head_dim
        qkv, lepe_in = _joint_linear(x, (self.q, self.kv, self.lepe_linear)).split([3 * c, c], dim=-1)
        q, k, v = qkv.reshape(b, n, 3, heads, d).permute(2, 0, 3, 1, 4)
        out = attention(q, k, v, scale=d**-0.5)
        return self.project(out.transpose(1, 2).reshape(b, n, c), lepe_in, size), None


def _attend_and_weigh(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Optional[torch.Tensor],
                      scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Attention output and its probabilities (detached, in the logits' dtype) for the significance.

    ``q``/``k``/``v`` are ``(B, heads, tokens, d)``; ``bias`` (keys of padded
    windows) broadcasts against the logits. On the fused path the output comes
    from SDPA (fused backward) and the probabilities from a softmax without
    autograd: the significance is not differentiated, so gradients are the
    plain path's while no queries x keys tensor is saved. Callers reduce the
    probabilities in at least float32 (:func:`_significance_dtype`).
    """
    if not fused_attention_enabled():
        out, probs = attention_with_probs(q, k, v, bias, scale)
        return out, probs.detach()
    out = attention(q, k, v, bias, scale)
    with torch.no_grad():
        probs = attention_probs(q, k, bias, scale)
    return out, probs


# ---------------------------------------------------------------------------
# Token reallocation (IAM)
# ---------------------------------------------------------------------------
#: Share of the sorted tokens in each significance group, least significant
#: first, by number of groups: 25/50/25 % in stages 1-2, 50/50 % in stage 3.
GROUP_SHARES = {3: (1, 2, 1), 2: (1, 1)}


def quantile_group_lengths(num_tokens: Union[int, torch.SymInt], num_groups: int) -> Tuple[int, ...]:
    """Lengths of the significance groups of ``num_tokens`` sorted tokens.

    Group ``g`` gets ``floor(num_tokens * share_g)`` tokens; the leftover
    (fewer than the number of groups) goes to the group of the largest share,
    the more significant one on a tie: the middle group of 25/50/25, the top
    half of 50/50. E.g. 9 tokens: (2, 5, 2); 5 tokens in halves: (2, 3).
    For a multiple of 4 tokens this is the reference's split.
    """
    if num_groups not in GROUP_SHARES:
        raise ValueError(f'no significance split into {num_groups} groups; valid: {sorted(GROUP_SHARES)}')
    shares = GROUP_SHARES[num_groups]
    lengths = [num_tokens * s // sum(shares) for s in shares]
    largest = max(g for g in range(num_groups) if shares[g] == max(shares))
    lengths[largest] += num_tokens - sum(lengths)
    return tuple(lengths)


class ReallocationPlan:
    """Where each key token of a reallocation comes from; see :func:`reallocation_plan`.

    Built from a token count that is an ``int`` (eager mode, cached per count) or
    a symbolic size (``torch.compile(dynamic=True)``, ``torch.export`` with
    dynamic dimensions): the group sizes are then expressions of it and the
    slot positions are computed in the graph, so no size is baked in.

    Attributes:
        lengths (tuple[int]): Sorted tokens per significance group.
        counts (tuple[int]): Key tokens each group merges into.
        padded_lengths (tuple[int]): ``count * rate`` per group.
        positions (list[int]): For each merged slot, its position in the
            ascending significance order (padding repeats a group's first);
            ``int`` token counts only.
        padded (bool): Whether any group was padded (always True for a
            symbolic count: the positions are then always applied, which is
            the identity where nothing is padded).
    """

    def __init__(self, num_tokens: Union[int, torch.SymInt], merge_rates: Sequence[int]) -> None:
        self.symbolic = not isinstance(num_tokens, int) or _tracing()
        self.lengths = quantile_group_lengths(num_tokens, len(merge_rates))
        # Ceil division of non-negative operands only: ONNX divides integers truncating, so a negated floor
        # division of a symbolic size would export as a floor.
        self.counts = tuple((length + rate - 1) // rate for length, rate in zip(self.lengths, merge_rates))
        self.padded_lengths = tuple(count * rate for count, rate in zip(self.counts, merge_rates))
        self.padded = self.symbolic or self.padded_lengths != self.lengths
        self._positions_by_device: Dict[torch.device, torch.Tensor] = {}

    @property
    def num_keys(self) -> int:
        return sum(self.counts)

    @property
    def positions(self) -> List[int]:
        return self._positions(torch.device('cpu')).tolist()

    def positions_on(self, device: torch.device) -> torch.Tensor:
        """:attr:`positions` as an index tensor on ``device``.

        Built once per device for an int count in eager mode; while tracing
        (compile, export: fake tensors) it is built in the graph, so that no
        traced tensor is kept in the cache.
        """
        if self.symbolic or _tracing():
            return self._positions(device)
        if device not in self._positions_by_device:
            self._positions_by_device[device] = self._positions(device)
        return self._positions_by_device[device]

    def _positions(self, device: torch.device) -> torch.Tensor:
        # Slot j of a group of L tokens padded to P reads position start + max(j - (P - L), 0).
        parts, start = [], 0
        for length, padded_length in zip(self.lengths, self.padded_lengths):
            slots = torch.arange(padded_length, device=device) - (padded_length - length)
            parts.append(slots.clamp(min=0) + start)
            start = start + length
        return torch.cat(parts)


def reallocation_tables(batch: int, height: int, width: int,
                        device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Index tables of the row-major and column-major reallocations of a ``(B, H, W)`` significance map.

    Returns:
        tuple: ``flattenings`` ``(2·N,)``: the row-major positions ``0..N-1``, then the token at each
        column-major position (``(j % H)·W + j // H``); ``rows_by_position`` ``(N, 2, B)``: at
        ``[j, s, i]`` the row of x as ``(B·N, C)`` of position ``j`` of order ``s`` in image ``i``.

    Cached per size and device in eager mode (a self-guided block would build them with several ops per
    call); built in the graph while tracing, like :meth:`ReallocationPlan.positions_on`.
    """
    if _tracing() or not all(isinstance(v, int) for v in (batch, height, width)):
        return _reallocation_tables(batch, height, width, device)
    return _cached_reallocation_tables(batch, height, width, device)


def _reallocation_tables(batch: int, height: int, width: int,
                         device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    n = height * width
    tokens = torch.arange(n, device=device)
    flattenings = torch.cat([tokens, tokens.view(height, width).t().reshape(n)])
    offsets = torch.arange(0, batch * n, n, device=device)
    return flattenings, (flattenings.view(2, n).t().unsqueeze(2) + offsets).contiguous()


@functools.lru_cache(maxsize=64)
def _cached_reallocation_tables(batch: int, height: int, width: int,
                                device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    return _reallocation_tables(batch, height, width, device)


def _tracing() -> bool:
    """Whether dynamo, torch.export or a fake-tensor trace is running (no tensor may be cached then)."""
    return (torch.compiler.is_compiling() or torch.compiler.is_exporting()
            or torch._guards.detect_fake_mode() is not None)


def reallocation_plan(num_tokens: Union[int, torch.SymInt], merge_rates: Sequence[int]) -> ReallocationPlan:
    """How ``num_tokens`` tokens sorted by significance merge into key tokens.

    The ascending order is cut into quantile groups
    (:func:`quantile_group_lengths`); group ``g`` merges runs of
    ``merge_rates[g]`` consecutive tokens into one key token.

    **Remainder rule** (this project's; the reference needs multiples): a group
    of ``L`` tokens whose length is not a multiple of its rate ``r`` is padded
    at its least significant end with copies of its least significant token up
    to ``ceil(L / r) * r``, so it yields ``ceil(L / r)`` key tokens and its
    most significant runs stay aligned as they would be without padding.
    An empty group yields none. At the reference's sizes nothing is padded.
    E.g. 9 tokens at rates (4, 2, 1): groups (2, 5, 2) give 1 + 3 + 2 keys from
    positions ``[0, 0, 0, 1 | 2, 2, 3, 4, 5, 6 | 7, 8]``.
    """
    # Traced (dynamo sees a symbolic size as an int; export, fake tensors): built in the graph, no size baked in.
    if isinstance(num_tokens, torch.SymInt) or _tracing():
        return ReallocationPlan(num_tokens, tuple(merge_rates))
    # int(): under jit tracing (FLOP counting) sizes read from tensor shapes are 0-dim tensors.
    return _cached_plan(int(num_tokens), tuple(merge_rates))


@functools.lru_cache(maxsize=64)
def _cached_plan(num_tokens: int, merge_rates: Tuple[int, ...]) -> ReallocationPlan:
    # Plans depend on the token count only: one per stage size and stage.
    return ReallocationPlan(num_tokens, merge_rates)


def key_token_shares(significance: torch.Tensor, merge_rates: Sequence[int], stable_sort: bool = False) -> torch.Tensor:
    """How many key tokens each token turns into after reallocation.

    A token of a group of ``L`` tokens that merges into ``K`` keys gets
    ``K / L`` (e.g. ``1/196`` in the least significant group of stage 1), so
    the shares of a region add up to the key tokens it received. Uses the
    row-major order (the first half of the heads).

    Args:
        significance (Tensor): ``(B, H, W)`` map of a hybrid-scale block.
        merge_rates (Sequence[int]): The stage's rates, e.g.
            ``SGFormer.merge_rates[stage]``.

    Returns:
        Tensor: ``(B, H, W)`` shares, summing to the number of key tokens.
    """
    b, h, w = significance.shape
    flat = significance.reshape(b, h * w)
    order = torch.sort(flat, dim=1, stable=True)[1] if stable_sort else torch.sort(flat, dim=1)[1]
    plan = reallocation_plan(h * w, merge_rates)
    per_group = [count / length if length else 0. for count, length in zip(plan.counts, plan.lengths)]
    sorted_shares = torch.cat([
        torch.full((length, ), share, dtype=torch.float32, device=flat.device)
        for length, share in zip(plan.lengths, per_group)
    ])
    shares = torch.empty_like(flat, dtype=torch.float32)
    shares.scatter_(1, order, sorted_shares.expand(b, -1))
    return shares.reshape(b, h, w)


# ---------------------------------------------------------------------------
# Position embedding and checkpoints
# ---------------------------------------------------------------------------
def sincos_pos_embed(dim: int, grid: Size) -> torch.Tensor:
    """2-D sin-cos table ``(H·W, dim)`` of a row-major ``grid`` (the MAE layout).

    The first half of the channels encodes the column index, the second half
    the row index; each half is ``[sin(p·ω), cos(p·ω)]`` with
    ``ω_k = 10000^(-k / (dim / 4))``.
    """
    if dim % 4:
        raise ValueError(f'sin-cos position embedding needs dim divisible by 4, got {dim}')
    omega = 1. / 10000**(torch.arange(dim // 4, dtype=torch.float64) / (dim / 4.))
    rows, cols = torch.meshgrid(torch.arange(grid[0], dtype=torch.float64),
                                torch.arange(grid[1], dtype=torch.float64), indexing='ij')

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.reshape(-1, 1) * omega
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([encode(cols), encode(rows)], dim=1).float()


def resize_pos_embed(pos_embed: torch.Tensor, src_grid: Size, dst_grid: Size) -> torch.Tensor:
    """Bicubically resize a ``(1, H·W, C)`` table from ``src_grid`` to ``dst_grid``."""
    c = pos_embed.shape[-1]
    grid = pos_embed.reshape(1, *src_grid, c).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(dst_grid), mode='bicubic', align_corners=False)
    return grid.flatten(2).transpose(1, 2)


def convert_sgformer_state_dict(state_dict: Mapping[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Bring an SG-Former state dict to this project's (= the released) key names.

    Accepts the released weights (already in this format), this project's
    files, and whole detectors / segmentors / mmpretrain classifiers: their
    ``backbone.*`` keys are taken and a classifier's ``head.fc.*`` becomes the
    released ``head.*``. Wrappers (``state_dict_ema`` ...) and ``module.`` are
    removed earlier by :func:`mmvit_backbones.checkpoint.extract_state_dict`.
    """
    return from_whole_model_state_dict(state_dict)
