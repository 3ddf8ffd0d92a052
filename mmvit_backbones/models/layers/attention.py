"""One attention entry point for every backbone: SDPA fast path and a plain path.

The fast path is :func:`torch.nn.functional.scaled_dot_product_attention` with
any position bias and key mask folded into one additive ``attn_mask``. The plain
path writes the softmax out; it exists to check the fast path and for the places
that need the attention probabilities themselves (SG-Former's significance maps).
"""
import contextlib
from typing import Iterator, Optional, Tuple

import torch
import torch.nn.functional as F

_FUSED = True


@contextlib.contextmanager
def fused_attention(enabled: bool) -> Iterator[None]:
    """Choose the fast (SDPA) or plain softmax path inside the ``with`` block."""
    global _FUSED
    previous, _FUSED = _FUSED, enabled
    try:
        yield
    finally:
        _FUSED = previous


def set_fused_attention_default(enabled: bool) -> None:
    """Set the path outside any :func:`fused_attention` block (``mmvit_backbones.compat`` decides it)."""
    global _FUSED
    _FUSED = bool(enabled)


def fused_attention_enabled() -> bool:
    """Whether :func:`attention` currently takes the SDPA path."""
    return _FUSED


def attention(q: torch.Tensor,
              k: torch.Tensor,
              v: torch.Tensor,
              bias: Optional[torch.Tensor] = None,
              scale: Optional[float] = None) -> torch.Tensor:
    """softmax(q kᵀ · scale + bias) v over the last two dims.

    Args:
        q (Tensor): Queries ``(..., Nq, d)``.
        k, v (Tensor): Keys and values ``(..., Nk, d)`` (v may have its own width).
        bias (Tensor, optional): Additive logits bias broadcastable to
            ``(..., Nq, Nk)``: position bias and/or a large negative value on keys
            to ignore. It is cast to the query dtype (bf16 under autocast).
        scale (float, optional): Defaults to ``d ** -0.5``.
    """
    if bias is not None:
        bias = bias.to(q.dtype)
    if _FUSED:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    out, _ = attention_with_probs(q, k, v, bias, scale)
    return out


def attention_probs(q: torch.Tensor,
                    k: torch.Tensor,
                    bias: Optional[torch.Tensor] = None,
                    scale: Optional[float] = None) -> torch.Tensor:
    """softmax(q · scale kᵀ + bias): the probabilities of the plain path.

    q is scaled before ``q @ kᵀ`` (as the reference implementations do).
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    logits = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        logits = logits + bias.to(logits.dtype)
    return logits.softmax(dim=-1)


def attention_with_probs(q: torch.Tensor,
                         k: torch.Tensor,
                         v: torch.Tensor,
                         bias: Optional[torch.Tensor] = None,
                         scale: Optional[float] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """The plain path of :func:`attention`, also returning the probabilities."""
    probs = attention_probs(q, k, bias, scale)
    return probs @ v, probs
