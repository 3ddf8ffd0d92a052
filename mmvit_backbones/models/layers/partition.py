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

:class:`GroupLayout` names one such grouping of one map size, with its padding
masks; its constructors are the only place each family's grouping rule lives.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

Pair = Tuple[int, int]


def pad_to_multiple(x: torch.Tensor, multiple: Pair) -> Tuple[torch.Tensor, Pair]:
    """Zero-pad a ``(B, H, W, C)`` map at the bottom/right to multiples of ``multiple``.

    Returns the padded map and the (pad_h, pad_w) added.
    """
    _, h, w, _ = x.shape
    pad_h, pad_w = _round_up(h, multiple[0]) - h, _round_up(w, multiple[1]) - w
    return pad_to(x, (h + pad_h, w + pad_w)), (pad_h, pad_w)


def always_masked() -> bool:
    """Whether padding, cropping and key masks are applied even where nothing is padded.

    True while ``torch.compile`` / ``torch.export`` traces: a branch on "is this
    size padded?" would make a graph with symbolic sizes compile again (or an
    export specialise) for sizes that happen to be multiples of the group; a zero
    pad and a zero bias cost little there. Eager mode skips them.
    """
    return torch.compiler.is_compiling()


def pad_to(x: torch.Tensor, size: Pair) -> torch.Tensor:
    """Zero-pad a ``(B, H, W, C)`` map at the bottom/right to ``size = (Hp, Wp)``.

    The pads are differences of sizes (no modulo): with symbolic sizes they stay
    expressions that symbolic reasoning and inductor's code generation handle.
    """
    _, h, w, _ = x.shape
    pad_h, pad_w = size[0] - h, size[1] - w
    if always_masked() or pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    return x


def crop(x: torch.Tensor, size: Pair) -> torch.Tensor:
    """Crop a ``(B, Hp, Wp, C)`` map to its top-left ``(B, H, W, C)``.

    A negative pad: one kernel forward and one backward, where slicing both
    axes costs a zero-filled copy per axis in backward. Returns ``x`` itself
    when there is nothing to crop (in eager mode: see :func:`always_masked`).
    """
    _, hp, wp, _ = x.shape
    h, w = size
    if not always_masked() and (h, w) == (hp, wp):
        return x
    return F.pad(x, (0, 0, 0, w - wp, 0, h - hp))


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


def _ceil_div(value: int, divisor: int) -> int:
    # Positive operands only (no negated floor division): symbolic sizes stay simple.
    return (value + divisor - 1) // divisor


def _round_up(value: int, multiple: int) -> int:
    return _ceil_div(value, multiple) * multiple


def _real_tokens(size: Pair, padded_size: Pair, group: Pair, interval: Pair,
                 device: Optional[torch.device]) -> torch.Tensor:
    """``(num_groups, N)`` bool, True where a group's token lies inside the ``size`` map.

    Built in group order directly (no partition copy, few ops: layouts are built
    per forward): a padded row ``rh·G·I + gh·I + ih`` is real when it is below H,
    viewed as ``(rh, 1, ih, 1, gh, 1)``; columns likewise as ``(1, rw, 1, iw, 1, gw)``;
    their conjunction is ``(rh, rw, ih, iw, gh, gw)``, the order of :func:`grid_partition`.
    """
    (h, w), (hp, wp), (gh, gw), (ih, iw) = size, padded_size, group, interval
    rh, rw = hp // (gh * ih), wp // (gw * iw)
    if always_masked():
        return _real_tokens_by_index((h, w), (rh, rw), group, interval, device)
    rows = (torch.arange(hp, device=device) < h).as_strided((rh, 1, ih, 1, gh, 1), (gh * ih, 0, 1, 0, ih, 0))
    cols = (torch.arange(wp, device=device) < w).as_strided((1, rw, 1, iw, 1, gw), (0, gw * iw, 0, 1, 0, iw))
    return (rows & cols).reshape(rh * rw * ih * iw, gh * gw)


def _real_tokens_by_index(size: Pair, regions: Pair, group: Pair, interval: Pair,
                          device: Optional[torch.device]) -> torch.Tensor:
    """:func:`_real_tokens` from each token's pixel coordinates, for traced graphs.

    Elementwise maths on a ``(num_groups, 1)`` and an ``(N,)`` index, with no
    view or reshape whose strides depend on whether a symbolic group count is 1
    (those make a graph with symbolic sizes branch on it, and compile again).
    """
    (h, w), (rh, rw), (gh, gw), (ih, iw) = size, regions, group, interval
    # Group (rh, rw, ih, iw) and member (gh, gw) digits by floor divisions only (no
    # remainder by a symbolic size: ONNX export has no such op).
    index = torch.arange(rh * rw * ih * iw, device=device)[:, None]
    member = torch.arange(gh * gw, device=device)
    by_iw, by_ih_iw, by_rw_ih_iw, by_gw = index // iw, index // (ih * iw), index // (rw * ih * iw), member // gw
    row = by_rw_ih_iw * (gh * ih) + by_gw * ih + (by_iw - by_ih_iw * ih)
    col = (by_ih_iw - by_rw_ih_iw * rw) * (gw * iw) + (member - by_gw * gw) * iw + (index - by_iw * iw)
    return (row < h) & (col < w)


@dataclass(frozen=True, eq=False)
class GroupLayout:
    """How one map size is cut into attention groups: the grouping vocabulary.

    Every backbone forms its groups through one of the constructors below and
    then uses :meth:`partition` / :meth:`reverse` (or, with the groups folded
    into SDPA's head axis, :meth:`partition_heads` / :meth:`reverse_heads`);
    nothing else needs to know how padding or interlacing works.

    Attributes:
        size: The ``(H, W)`` of the map.
        padded_size: ``(Hp, Wp)`` after bottom/right zero padding.
        group: Tokens per group, ``(rows, columns)`` (see :func:`grid_partition`).
        interval: Spacing of a group's members, ``(rows, columns)``.
        key_bias: ``(num_groups, 1, 1, N)`` additive logits bias, 0 for real
            keys and ``key_bias_value`` for padded ones; None without padding.
        query_mask: ``(num_groups, N)`` bool, True for real (unpadded) queries;
            None without padding. Explicit, so that nothing has to recover it
            from the key bias.
    """

    size: Pair
    padded_size: Pair
    group: Pair
    interval: Pair
    key_bias: Optional[torch.Tensor] = None
    query_mask: Optional[torch.Tensor] = None

    @property
    def num_groups(self) -> int:
        """Groups per image."""
        (hp, wp), (gh, gw) = self.padded_size, self.group
        return (hp // gh) * (wp // gw)

    @property
    def num_tokens(self) -> int:
        """Tokens per group, ``N``."""
        return self.group[0] * self.group[1]

    @property
    def padded(self) -> bool:
        return self.size != self.padded_size

    def key(self) -> Tuple[Pair, Pair, Pair, Pair]:
        """The geometry without the masks (for comparisons and tests)."""
        return self.size, self.padded_size, self.group, self.interval

    def partition(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` map to ``(B·num_groups, N, C)`` groups (padding first)."""
        return grid_partition(pad_to(x, self.padded_size), self.group, self.interval)

    def reverse(self, groups: torch.Tensor) -> torch.Tensor:
        """``(B·num_groups, N, C)`` groups back to the cropped ``(B, H, W, C)`` map."""
        return crop(grid_reverse(groups, self.padded_size, self.group, self.interval), self.size)

    def partition_heads(self, x: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
        """``(B, H, W, P·heads·head_dim)`` map of ``P`` stacked parts (e.g. q, k, v) to
        ``(P, B, num_groups·heads, N, head_dim)``, in one copy (padding first).

        Groups share SDPA's head axis with the heads (group-major), so that the
        grouped tensors are 4-D inputs of the fused kernels and :attr:`key_bias`
        broadcasts over the batch only.
        """
        x = pad_to(x, self.padded_size)
        b, hp, wp, _ = x.shape
        (gh, gw), (ih, iw) = self.group, self.interval
        rh, rw = hp // (gh * ih), wp // (gw * iw)
        x = x.view(b, rh, gh, ih, rw, gw, iw, -1, heads, head_dim).permute(7, 0, 1, 4, 3, 6, 8, 2, 5, 9)
        return x.reshape(-1, b, self.num_groups * heads, self.num_tokens, head_dim)

    def reverse_heads(self, groups: torch.Tensor, heads: int) -> torch.Tensor:
        """``(B, num_groups·heads, N, d)`` (as from :meth:`partition_heads`) to the
        padded ``(B, Hp, Wp, heads·d)`` map, heads back to channels in one copy.

        Not cropped: the caller crops (:func:`crop`, or a slice it fuses with its next op).
        """
        (hp, wp), (gh, gw), (ih, iw) = self.padded_size, self.group, self.interval
        b, d = groups.shape[0], groups.shape[-1]
        x = groups.view(b, hp // (gh * ih), wp // (gw * iw), ih, iw, heads, gh, gw, d)
        return x.permute(0, 1, 6, 3, 2, 7, 4, 5, 8).reshape(b, hp, wp, heads * d)

    def reverse_values(self, groups: torch.Tensor) -> torch.Tensor:
        """One value per token, ``(B, num_groups, N)``, to the padded ``(B, Hp, Wp)`` map (not cropped)."""
        (hp, wp), (gh, gw), (ih, iw) = self.padded_size, self.group, self.interval
        b = groups.shape[0]
        x = groups.view(b, hp // (gh * ih), wp // (gw * iw), ih, iw, gh, gw)
        return x.permute(0, 1, 5, 3, 2, 6, 4).reshape(b, hp, wp)

    @classmethod
    def build(cls,
              size: Pair,
              padded_size: Pair,
              group: Pair,
              interval: Pair = (1, 1),
              key_bias_value: float = float('-inf'),
              device: Optional[torch.device] = None) -> 'GroupLayout':
        """A layout with its masks computed (the constructors below call this)."""
        size, padded_size, group, interval = (tuple(size), tuple(padded_size), tuple(group), tuple(interval))
        if not always_masked() and size == padded_size:
            return cls(size, padded_size, group, interval)
        query_mask = _real_tokens(size, padded_size, group, interval, device)
        num_groups, num_tokens = query_mask.shape
        key_bias = torch.full((num_groups, 1, 1, num_tokens), key_bias_value, device=device).masked_fill(
            query_mask.view(num_groups, 1, 1, num_tokens), 0.)
        return cls(size, padded_size, group, interval, key_bias, query_mask)

    @classmethod
    def whole_map(cls, size: Pair) -> 'GroupLayout':
        """One group of all ``H × W`` tokens."""
        return cls.build(size, size, size)

    @classmethod
    def windows(cls,
                size: Pair,
                window: Pair,
                key_bias_value: float = float('-inf'),
                device: Optional[torch.device] = None) -> 'GroupLayout':
        """Contiguous ``window`` tiles, the map padded to multiples of the window
        (CrossFormer's SDA, Swin)."""
        padded = (_round_up(size[0], window[0]), _round_up(size[1], window[1]))
        return cls.build(size, padded, window, (1, 1), key_bias_value, device)

    @classmethod
    def sg_local_windows(cls, size: Pair, window: int, device: Optional[torch.device] = None) -> 'GroupLayout':
        """SG-Former's local branch (the hybrid-scale attention's windowed half):
        ``window × window`` tiles, padded keys masked with ``-inf``, and the
        query mask over which its significance averages."""
        return cls.windows(size, (window, window), float('-inf'), device)

    @classmethod
    def long_distance(cls,
                      size: Pair,
                      group_size: int,
                      interval: int,
                      lda_version: int,
                      key_bias_value: float = float('-inf'),
                      device: Optional[torch.device] = None) -> 'GroupLayout':
        """CrossFormer's LDA groups.

        * version 2 (CrossFormer++): ``G × G`` tokens spaced ``I`` apart, the
          map padded to multiples of ``G·I``;
        * version 1 (CrossFormer): ``I × I`` groups of ``ceil(H/I) × ceil(W/I)``
          tokens spaced ``I`` apart, the map padded to multiples of ``I``.
        """
        h, w = size
        if lda_version == 2:
            span = group_size * interval
            return cls.build(size, (_round_up(h, span), _round_up(w, span)), (group_size, group_size),
                             (interval, interval), key_bias_value, device)
        if lda_version == 1:
            group = (_ceil_div(h, interval), _ceil_div(w, interval))
            return cls.build(size, (group[0] * interval, group[1] * interval), group, (interval, interval),
                             key_bias_value, device)
        raise ValueError(f'lda_version must be 1 or 2, got {lda_version!r}')

    @classmethod
    def pales(cls, size: Pair, pale_size: Pair,
              device: Optional[torch.device] = None) -> Tuple['GroupLayout', 'GroupLayout']:
        """Pale Transformer's row and column groups of a ``size`` map.

        The map is padded to multiples of the pale size ``(s_r, s_c)`` (clipped
        to the map: an axis shorter than it is one group along it). With
        ``N_r = Hp / s_r``, row group ``i`` holds the ``s_r`` interlaced rows
        ``i, i + N_r, ..., i + (s_r - 1) N_r`` across the full padded width:
        group ``(s_r, Wp)``, interval ``(N_r, 1)``. Column groups likewise.
        Padded keys get ``-inf``. While traced, see :func:`always_masked` and below.
        """
        h, w = size
        if always_masked():
            # Traced: an axis shorter than the pale is padded to it instead (its padded
            # rows or columns are masked keys and cropped queries: the same groups, up to
            # rounding), so that no graph branches on the map's size against the pale.
            (s_r, s_c), n_r, n_c = pale_size, _ceil_div(h, pale_size[0]), _ceil_div(w, pale_size[1])
        else:
            s_r, n_r = (pale_size[0], _ceil_div(h, pale_size[0])) if h >= pale_size[0] else (h, 1)
            s_c, n_c = (pale_size[1], _ceil_div(w, pale_size[1])) if w >= pale_size[1] else (w, 1)
        hp, wp = n_r * s_r, n_c * s_c
        rows = cls.build(size, (hp, wp), (s_r, wp), (n_r, 1), device=device)
        cols = cls.build(size, (hp, wp), (hp, s_c), (1, n_c), device=device)
        return rows, cols
