"""SG-Former's blocks and attention as they were before the eager-speed rewrite (issue 15): the reference.

A frozen copy of ``mmvit_backbones/models/backbones/sg_former.py`` (stem, downsamplers, blocks, the three
attentions, the reallocation plan) and of the layer helpers it used (windows, padding masks, attention), so
that the rewritten path can be tested equal to it, forward and gradients, whatever later changes to the
shared layers. :class:`ReferenceSGFormer` has the same parameter names as ``SGFormer``: load the model's
state dict into it. Not used by the package.

One deliberate change from the copied code (issue 15, item 6): the significance and the one-group norms
computed ``.float()``, which cast float64 down to float32; here they compute in at least float32
(:func:`AT_LEAST_FLOAT32`), so that float64 runs of both implementations can be compared exactly. For
float32, bfloat16 and float16 inputs this is what ``.float()`` did.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mmvit_backbones.models.layers import DropPath, fused_attention_enabled

Size = Tuple[int, int]
Pair = Tuple[int, int]


def AT_LEAST_FLOAT32(dtype: torch.dtype) -> torch.dtype:  # noqa: N802 (reads as a constant rule)
    return torch.promote_types(dtype, torch.float32)


# -- layer helpers as they were ------------------------------------------------------
def nlc_to_nchw(x: torch.Tensor, size: Size) -> torch.Tensor:
    b, _, c = x.shape
    return x.transpose(1, 2).reshape(b, c, *size)


def nchw_to_nlc(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


def pad_to_multiple(x: torch.Tensor, multiple: Pair) -> Tuple[torch.Tensor, Pair]:
    _, h, w, _ = x.shape
    pad_h = (multiple[0] - h % multiple[0]) % multiple[0]
    pad_w = (multiple[1] - w % multiple[1]) % multiple[1]
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    return x, (pad_h, pad_w)


def grid_partition(x: torch.Tensor, group: Pair) -> torch.Tensor:
    b, h, w, c = x.shape
    gh, gw = group
    x = x.view(b, h // gh, gh, w // gw, gw, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, gh * gw, c)


def grid_reverse(groups: torch.Tensor, size: Pair, group: Pair) -> torch.Tensor:
    h, w = size
    gh, gw = group
    c = groups.shape[-1]
    x = groups.view(-1, h // gh, w // gw, gh, gw, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def padding_key_bias(size: Pair, padded_size: Pair, group: Pair,
                     device: Optional[torch.device] = None) -> Optional[torch.Tensor]:
    (h, w), (hp, wp) = size, padded_size
    if (h, w) == (hp, wp):
        return None
    padded = torch.ones(1, hp, wp, 1, device=device, dtype=torch.bool)
    padded[:, :h, :w] = False
    padded = grid_partition(padded, group)
    bias = torch.zeros(padded.shape[0], 1, 1, padded.shape[1], device=device)
    return bias.masked_fill(padded.transpose(1, 2).unsqueeze(1), float('-inf'))


def attention_probs(q, k, bias=None, scale=None):
    scale = q.shape[-1]**-0.5 if scale is None else scale
    logits = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        logits = logits + bias.to(logits.dtype)
    return logits.softmax(dim=-1)


def attention_with_probs(q, k, v, bias=None, scale=None):
    probs = attention_probs(q, k, bias, scale)
    return probs @ v, probs


def attention(q, k, v, bias=None, scale=None):
    if bias is not None:
        bias = bias.to(q.dtype)
    if fused_attention_enabled():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    return attention_with_probs(q, k, v, bias, scale)[0]


# -- blocks and attention as they were -------------------------------------------------
class SingleGroupNorm(nn.GroupNorm):
    """``nn.GroupNorm(1, C)`` (normalises C, H, W per sample), fast on large maps.

    PyTorch's GroupNorm kernel reduces each (sample, group) row inside one
    thread block: with one group and two images of 800x1216 that is two blocks
    for the whole GPU, 3.3 ms per call on an H100 and about 40 % of
    SG-Former-S's dense training step. ``torch.var_mean`` spreads the
    reduction over the device; the normalisation is one fused scale and shift.
    Same parameters and result (float32 statistics; under autocast the output
    is float32, as CUDA autocast makes ``group_norm``'s).
    """

    def __init__(self, num_channels: int, eps: float = 1e-5) -> None:
        super().__init__(1, num_channels, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        autocast = x.device.type != 'meta' and torch.is_autocast_enabled(x.device.type)
        x32 = x.to(AT_LEAST_FLOAT32(x.dtype))
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
    it consumes it (and returns None), global blocks ignore it.
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
        out, significance = self.attn(self.norm1(x), size, significance)
        x = x + self.drop_path(out)
        x = x + self.drop_path(self.mlp(self.norm2(x), size))
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
    """

    def add_output_layers(self, dim: int) -> None:
        self.lepe_linear = nn.Linear(dim, dim)
        self.lepe_conv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.proj = nn.Linear(dim, dim)

    def project(self, attn_out: torch.Tensor, x: torch.Tensor, size: Size) -> torch.Tensor:
        lepe = nchw_to_nlc(self.lepe_conv(nlc_to_nchw(self.lepe_linear(x), size)))
        return self.proj(attn_out + lepe)


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
    queries x keys is kept for backward.
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
        coarse, coarse_significance = self._coarse(x, size)
        local, local_significance = self._local(x, size)
        out = self.project(torch.cat([coarse, local], dim=-1), x, size)
        return out, local_significance + coarse_significance

    def _coarse(self, x: torch.Tensor, size: Size) -> Tuple[torch.Tensor, torch.Tensor]:
        b, n, c = x.shape
        h, w = size
        heads, d, sr = self.num_heads // 2, self.head_dim, self.sr_ratio
        q = self.q1(x).reshape(b, n, heads, d).transpose(1, 2)
        padded, _ = pad_to_multiple(x.view(b, h, w, c), (sr, sr))
        merged = self.sr(padded.permute(0, 3, 1, 2))
        coarse_size = merged.shape[2:]
        merged = self.act(self.norm(nchw_to_nlc(merged)))
        k, v = self.kv1(merged).reshape(b, -1, 2, heads, d).permute(2, 0, 3, 1, 4)
        out, probs = _attend_and_weigh(q, k, v, None, d**-0.5)
        # Attention received by each coarse key: mean over heads, then queries.
        received = probs.mean(1).mean(1).reshape(b, 1, *coarse_size)
        received = F.interpolate(received, size=padded.shape[1:3], mode='nearest')
        return out.transpose(1, 2).reshape(b, n, c // 2), received[:, 0, :h, :w]

    def _local(self, x: torch.Tensor, size: Size) -> Tuple[torch.Tensor, torch.Tensor]:
        b, n, c = x.shape
        h, w = size
        heads, d, ws = self.num_heads // 2, self.head_dim, self.window_size
        q, _ = pad_to_multiple(self.q2(x).view(b, h, w, c // 2), (ws, ws))
        kv, _ = pad_to_multiple(self.kv2(x).view(b, h, w, c), (ws, ws))
        padded_size = q.shape[1:3]
        # Windows on the batch axis, ordered (batch, heads, window) as in the reference.
        q = grid_partition(q, (ws, ws)).reshape(b, -1, ws * ws, heads, d).permute(0, 3, 1, 2, 4)
        k, v = grid_partition(kv, (ws, ws)).reshape(b, -1, ws * ws, 2, heads, d).permute(3, 0, 4, 1, 2, 5)
        key_bias = padding_key_bias(size, padded_size, (ws, ws), device=x.device)
        if key_bias is not None:
            key_bias = key_bias.flatten(1, 2)  # (windows, 1, keys) against (B, heads, windows, q, k)
        out, probs = _attend_and_weigh(q, k, v, key_bias, d**-0.5)
        out = out.permute(0, 2, 3, 1, 4).reshape(-1, ws * ws, c // 2)
        out = grid_reverse(out, padded_size, (ws, ws))[:, :h, :w].reshape(b, n, c // 2)

        probs = probs.mean(1)  # (B, windows, queries, keys)
        if key_bias is None:
            received = probs.mean(-2)
        else:  # mean over the real queries of each window
            real = torch.isfinite(key_bias[:, 0]).to(probs.dtype)  # (windows, queries)
            received = torch.einsum('bwqk,wq->bwk', probs, real / real.sum(1, keepdim=True))
        received = grid_reverse(received.reshape(-1, ws * ws, 1), padded_size, (ws, ws))
        return out, received[:, :h, :w, 0]


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
        h, w = size
        heads, d = self.num_heads // 2, self.head_dim
        q = self.q(x).reshape(b, n, self.num_heads, d).transpose(1, 2)
        rows = self.reallocate(x, significance.reshape(b, n))
        x_columns = x.view(b, h, w, c).transpose(1, 2).reshape(b, n, c)
        columns = self.reallocate(x_columns, significance.transpose(1, 2).reshape(b, n))
        k1, v1 = self.kv1(rows).reshape(b, -1, 2, heads, d).permute(2, 0, 3, 1, 4)
        k2, v2 = self.kv2(columns).reshape(b, -1, 2, heads, d).permute(2, 0, 3, 1, 4)
        out = attention(q, torch.cat([k1, k2], dim=1), torch.cat([v1, v2], dim=1), scale=d**-0.5)
        return self.project(out.transpose(1, 2).reshape(b, n, c), x, size), None

    def reallocate(self, x: torch.Tensor, significance: torch.Tensor) -> torch.Tensor:
        """Merge the tokens ``x`` ``(B, N, C)`` by their ``significance`` ``(B, N)``.

        Returns:
            Tensor: ``(B, M, C)`` key tokens, least significant group first.
        """
        b, n, c = x.shape
        if self.stable_sort:
            order = torch.sort(significance, dim=1, stable=True)[1]
        else:  # the reference's call: torch.sort defaults
            order = torch.sort(significance, dim=1)[1]
        plan = reallocation_plan(n, self.merge_rates)
        if plan.padded:
            order = order[:, plan.positions_on(order.device)]
        tokens = torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, c)).transpose(1, 2)
        merged = []
        # One Linear(r, 1) per group (at most three): a loop over layers, not over tokens.
        for g, (chunk, count) in enumerate(zip(tokens.split(plan.padded_lengths, dim=2), plan.counts)):
            if count:
                merge = getattr(self, f'f{g + 1}')
                merged.append(merge(chunk.reshape(b, c, count, self.merge_rates[g]))[..., 0])
        return torch.cat(merged, dim=2).transpose(1, 2)


class GlobalAttention(LePEAttention):
    """Plain multi-head attention over all tokens (stage 4), with the LePE term."""

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
        q = self.q(x).reshape(b, n, heads, d).transpose(1, 2)
        k, v = self.kv(x).reshape(b, n, 2, heads, d).permute(2, 0, 3, 1, 4)
        out = attention(q, k, v, scale=d**-0.5)
        return self.project(out.transpose(1, 2).reshape(b, n, c), x, size), None


def _attend_and_weigh(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Optional[torch.Tensor],
                      scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Attention output and its probabilities, detached and float32, for the significance.

    ``q``/``k``/``v`` are ``(B, heads, [windows,] tokens, d)``; ``bias`` (keys
    of padded windows) broadcasts against the logits. On the fused path the
    output comes from SDPA (fused backward) and the probabilities from a
    softmax without autograd: the significance is not differentiated, so
    gradients are the plain path's while no queries x keys tensor is saved.
    The significance is reduced and sorted in float32 even under bf16
    autocast (``float()`` is a no-op in float32: the reference's reductions).
    """
    if not fused_attention_enabled():
        out, probs = attention_with_probs(q, k, v, bias, scale)
        return out, probs.detach().to(AT_LEAST_FLOAT32(probs.dtype))
    # SDPA's fused kernels take 4-D inputs: fold the windows into the head axis
    # (head-major, matching the bias repeated once per head).
    if q.dim() == 4:
        out = attention(q, k, v, bias, scale)
    else:
        heads_windows = q.shape[1:3]
        folded_bias = None if bias is None else bias.repeat(heads_windows[0], 1, 1)
        out = attention(q.flatten(1, 2), k.flatten(1, 2), v.flatten(1, 2), folded_bias, scale)
        out = out.unflatten(1, heads_windows)
    with torch.no_grad():
        probs = attention_probs(q, k, bias, scale)
    return out, probs.to(AT_LEAST_FLOAT32(probs.dtype))


GROUP_SHARES = {3: (1, 2, 1), 2: (1, 1)}


def quantile_group_lengths(num_tokens: int, num_groups: int) -> Tuple[int, ...]:
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

    Attributes:
        lengths (tuple[int]): Sorted tokens per significance group.
        counts (tuple[int]): Key tokens each group merges into.
        padded_lengths (tuple[int]): ``count * rate`` per group.
        positions (list[int]): For each merged slot, its position in the
            ascending significance order (padding repeats a group's first).
        padded (bool): Whether any group was padded.
    """

    def __init__(self, num_tokens: int, merge_rates: Sequence[int]) -> None:
        self.lengths = quantile_group_lengths(num_tokens, len(merge_rates))
        self.counts = tuple(-(-length // rate) for length, rate in zip(self.lengths, merge_rates))
        self.padded_lengths = tuple(count * rate for count, rate in zip(self.counts, merge_rates))
        self.padded = self.padded_lengths != self.lengths
        self.positions: List[int] = []
        start = 0
        for length, padded_length in zip(self.lengths, self.padded_lengths):
            self.positions += [start] * (padded_length - length) + list(range(start, start + length))
            start += length
        self._positions_by_device: Dict[torch.device, torch.Tensor] = {}

    @property
    def num_keys(self) -> int:
        return sum(self.counts)

    def positions_on(self, device: torch.device) -> torch.Tensor:
        """:attr:`positions` as an index tensor on ``device`` (built once per device)."""
        if device not in self._positions_by_device:
            self._positions_by_device[device] = torch.tensor(self.positions, dtype=torch.long, device=device)
        return self._positions_by_device[device]


def reallocation_plan(num_tokens: int, merge_rates: Sequence[int]) -> ReallocationPlan:
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
    return ReallocationPlan(int(num_tokens), tuple(merge_rates))


def resize_pos_embed(pos_embed: torch.Tensor, src_grid: Size, dst_grid: Size) -> torch.Tensor:
    """Bicubically resize a ``(1, H·W, C)`` table from ``src_grid`` to ``dst_grid``."""
    c = pos_embed.shape[-1]
    grid = pos_embed.reshape(1, *src_grid, c).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(dst_grid), mode='bicubic', align_corners=False)
    return grid.flatten(2).transpose(1, 2)




class ReferenceSGFormer(nn.Module):
    """The whole backbone as it was, built from an ``SGFormer``'s configuration (same parameter names).

    ``ReferenceSGFormer(model)`` copies the structure of ``model`` (an ``SGFormer``); load its weights with
    ``load_state_dict(model.state_dict())``. ``forward`` returns the stage outputs of ``out_indices`` and the
    significance maps of stages 1-3, as ``SGFormer.forward_with_significance`` does.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        dims, heads = model.embed_dims, model.num_heads
        self.out_indices = tuple(model.out_indices)
        self.pos_grid = model.pos_grid
        self.pos_embed = nn.Parameter(torch.zeros_like(model.pos_embed))
        for i in range(4):
            self.add_module(f'patch_embed{i + 1}', ConvStem(model.in_channels, dims[0]) if i == 0 else
                            ConvDownsample(dims[i - 1], dims[i]))
            blocks = []
            for j, block in enumerate(getattr(model, f'block{i + 1}')):
                kind = 'global' if i == 3 else ('hybrid' if j % 2 == 0 else 'guided')
                blocks.append(SGFormerBlock(dims[i], heads[i], kind, model.sr_ratios[i],
                                            model.merge_rates[i] if i < 3 else (), model.window_size,
                                            model.mlp_ratio, block.drop_path.drop_prob, model.stable_sort))
            self.add_module(f'block{i + 1}', nn.ModuleList(blocks))
            self.add_module(f'norm{i + 1}', nn.LayerNorm(dims[i], eps=1e-6))

    def forward(self, x: torch.Tensor) -> Tuple[Tuple[torch.Tensor, ...], List[torch.Tensor]]:
        outs, maps = [], []
        for i in range(4):
            x, size = getattr(self, f'patch_embed{i + 1}')(x)
            if i == 0:
                pos = self.pos_embed if tuple(size) == self.pos_grid else resize_pos_embed(
                    self.pos_embed, self.pos_grid, size)
                x = x + pos
            significance = kept = None
            for block in getattr(self, f'block{i + 1}'):
                x, significance = block(x, size, significance)
                if significance is not None:
                    kept = significance
            x = nlc_to_nchw(getattr(self, f'norm{i + 1}')(x), size).contiguous()
            if i in self.out_indices:
                outs.append(x)
            if i < 3:
                maps.append(kept)
        return tuple(outs), maps


__all__: List[str] = ['ReferenceSGFormer', 'HybridScaleAttention', 'SelfGuidedAttention', 'GlobalAttention',
                      'SGFormerBlock', 'reallocation_plan']
