"""CrossFormer's dynamic position bias MLP as two Triton kernels (CUDA).

The MLP (``Linear(2, d)``, then three ``[LayerNorm, ReLU, Linear]``) runs on a
table of at most a few thousand offsets, so in eager PyTorch its ~12 forward
and ~20 backward kernels per block cost host time, not GPU time. Here the
forward is one kernel and the backward one kernel (which recomputes the
forward). :func:`dpb_mlp` is the entry point; :func:`dpb_mlp_reference` the
PyTorch maths it must equal (also the CPU path). Tests run the kernels on CPU
with ``TRITON_INTERPRET=1``.
"""
import os
from typing import Sequence

import torch
import torch.nn.functional as F

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - triton is optional
    triton = None

LN_EPS = 1e-5  # nn.LayerNorm's default, as in DynamicPosBias (the kernels hard-code it too)
#: Set to 0 to keep the PyTorch path on CUDA.
ENV_SWITCH = 'MMVIT_TRITON_DPB'


def _block_rows(d_padded: int) -> int:
    # Rows per step: the (rows, D, D) products stay within ~2K registers' worth of values.
    return max(1, min(64, 2048 // (d_padded * d_padded)))


def dpb_mlp_reference(offsets: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(R, 2)`` offsets to ``(R, heads)``: the PyTorch path.

    ``params``: ``w0, b0, g1, beta1, w1, b1, g2, beta2, w2, b2, g3, beta3, w3, b3``.
    """
    w0, b0, g1, be1, w1, b1, g2, be2, w2, b2, g3, be3, w3, b3 = params
    x = F.linear(offsets, w0, b0)
    x = F.linear(F.relu(F.layer_norm(x, x.shape[-1:], g1, be1, LN_EPS)), w1, b1)
    x = F.linear(F.relu(F.layer_norm(x, x.shape[-1:], g2, be2, LN_EPS)), w2, b2)
    return F.linear(F.relu(F.layer_norm(x, x.shape[-1:], g3, be3, LN_EPS)), w3, b3)


if triton is not None:

    @triton.jit
    def _load_matrix(ptr, OUT: tl.constexpr, IN: tl.constexpr, OUT_P: tl.constexpr, IN_P: tl.constexpr):
        o = tl.arange(0, OUT_P)
        i = tl.arange(0, IN_P)
        return tl.load(ptr + o[:, None] * IN + i[None, :], mask=(o[:, None] < OUT) & (i[None, :] < IN), other=0.)

    @triton.jit
    def _load_vector(ptr, N: tl.constexpr, N_P: tl.constexpr):
        n = tl.arange(0, N_P)
        return tl.load(ptr + n, mask=n < N, other=0.)

    @triton.jit
    def _linear(x, w, b):
        # x (BR, IN_P), w (OUT_P, IN_P), b (OUT_P,) -> (BR, OUT_P)
        return tl.sum(x[:, None, :] * w[None, :, :], axis=2) + b[None, :]

    @triton.jit
    def _norm(h, D: tl.constexpr, D_P: tl.constexpr):
        """LayerNorm without affine over the first D columns; returns (xhat, rstd)."""
        valid = (tl.arange(0, D_P) < D)[None, :]
        mean = tl.sum(h, axis=1) / D
        centred = tl.where(valid, h - mean[:, None], 0.)
        rstd = 1. / tl.sqrt(tl.sum(centred * centred, axis=1) / D + 1e-5)
        return centred * rstd[:, None], rstd

    @triton.jit
    def _norm_backward(dxhat, xhat, rstd, D: tl.constexpr, D_P: tl.constexpr):
        valid = (tl.arange(0, D_P) < D)[None, :]
        mean_dxhat = tl.sum(dxhat, axis=1) / D
        mean_dxhat_xhat = tl.sum(dxhat * xhat, axis=1) / D
        dh = rstd[:, None] * (dxhat - mean_dxhat[:, None] - xhat * mean_dxhat_xhat[:, None])
        return tl.where(valid, dh, 0.)

    @triton.jit
    def _dpb_forward_kernel(x_ptr, out_ptr, w0, b0, g1, be1, w1, b1, g2, be2, w2, b2, g3, be3, w3, b3, R,
                            D: tl.constexpr, H: tl.constexpr, D_P: tl.constexpr, H_P: tl.constexpr,
                            BR: tl.constexpr):
        rows = tl.program_id(0) * BR + tl.arange(0, BR)
        row_ok = rows < R
        c2 = tl.arange(0, 2)
        x = tl.load(x_ptr + rows[:, None] * 2 + c2[None, :], mask=row_ok[:, None], other=0.)
        h = _linear(x, _load_matrix(w0, D, 2, D_P, 2), _load_vector(b0, D, D_P))
        xhat, _ = _norm(h, D, D_P)
        a = tl.maximum(xhat * _load_vector(g1, D, D_P)[None, :] + _load_vector(be1, D, D_P)[None, :], 0.)
        h = _linear(a, _load_matrix(w1, D, D, D_P, D_P), _load_vector(b1, D, D_P))
        xhat, _ = _norm(h, D, D_P)
        a = tl.maximum(xhat * _load_vector(g2, D, D_P)[None, :] + _load_vector(be2, D, D_P)[None, :], 0.)
        h = _linear(a, _load_matrix(w2, D, D, D_P, D_P), _load_vector(b2, D, D_P))
        xhat, _ = _norm(h, D, D_P)
        a = tl.maximum(xhat * _load_vector(g3, D, D_P)[None, :] + _load_vector(be3, D, D_P)[None, :], 0.)
        out = _linear(a, _load_matrix(w3, H, D, H_P, D_P), _load_vector(b3, H, H_P))
        hc = tl.arange(0, H_P)
        tl.store(out_ptr + rows[:, None] * H + hc[None, :], out, mask=row_ok[:, None] & (hc[None, :] < H))

    @triton.jit
    def _dpb_backward_kernel(x_ptr, dout_ptr, w0, b0, g1, be1, w1, b1, g2, be2, w2, b2, g3, be3, w3, b3,
                             grads_ptr, R, D: tl.constexpr, H: tl.constexpr, D_P: tl.constexpr,
                             H_P: tl.constexpr, BR: tl.constexpr):
        """One program: loops over all rows, recomputing the forward, and writes the
        parameter gradients, each as a padded block of ``grads_ptr`` (see :func:`_grad_layout`)."""
        W0 = _load_matrix(w0, D, 2, D_P, 2)
        B0 = _load_vector(b0, D, D_P)
        G1 = _load_vector(g1, D, D_P)
        BE1 = _load_vector(be1, D, D_P)
        W1 = _load_matrix(w1, D, D, D_P, D_P)
        B1 = _load_vector(b1, D, D_P)
        G2 = _load_vector(g2, D, D_P)
        BE2 = _load_vector(be2, D, D_P)
        W2 = _load_matrix(w2, D, D, D_P, D_P)
        B2 = _load_vector(b2, D, D_P)
        G3 = _load_vector(g3, D, D_P)
        BE3 = _load_vector(be3, D, D_P)
        W3 = _load_matrix(w3, H, D, H_P, D_P)
        dW0 = tl.zeros((D_P, 2), tl.float32)
        dB0 = tl.zeros((D_P, ), tl.float32)
        dG1 = tl.zeros((D_P, ), tl.float32)
        dBE1 = tl.zeros((D_P, ), tl.float32)
        dW1 = tl.zeros((D_P, D_P), tl.float32)
        dB1 = tl.zeros((D_P, ), tl.float32)
        dG2 = tl.zeros((D_P, ), tl.float32)
        dBE2 = tl.zeros((D_P, ), tl.float32)
        dW2 = tl.zeros((D_P, D_P), tl.float32)
        dB2 = tl.zeros((D_P, ), tl.float32)
        dG3 = tl.zeros((D_P, ), tl.float32)
        dBE3 = tl.zeros((D_P, ), tl.float32)
        dW3 = tl.zeros((H_P, D_P), tl.float32)
        dB3 = tl.zeros((H_P, ), tl.float32)
        c2 = tl.arange(0, 2)
        hc = tl.arange(0, H_P)
        for start in range(0, R, BR):
            rows = start + tl.arange(0, BR)
            row_ok = rows < R
            x = tl.load(x_ptr + rows[:, None] * 2 + c2[None, :], mask=row_ok[:, None], other=0.)
            # Forward, keeping what backward needs.
            h0 = _linear(x, W0, B0)
            xh1, r1 = _norm(h0, D, D_P)
            p1 = xh1 * G1[None, :] + BE1[None, :]
            a1 = tl.maximum(p1, 0.)
            h1 = _linear(a1, W1, B1)
            xh2, r2 = _norm(h1, D, D_P)
            p2 = xh2 * G2[None, :] + BE2[None, :]
            a2 = tl.maximum(p2, 0.)
            h2 = _linear(a2, W2, B2)
            xh3, r3 = _norm(h2, D, D_P)
            p3 = xh3 * G3[None, :] + BE3[None, :]
            a3 = tl.maximum(p3, 0.)
            # Backward (rows past R load a zero gradient).
            dout = tl.load(dout_ptr + rows[:, None] * H + hc[None, :], mask=row_ok[:, None] & (hc[None, :] < H),
                           other=0.)
            dW3 += tl.sum(dout[:, :, None] * a3[:, None, :], axis=0)
            dB3 += tl.sum(dout, axis=0)
            da = tl.sum(dout[:, :, None] * W3[None, :, :], axis=1)
            dp = tl.where(p3 > 0, da, 0.)
            dG3 += tl.sum(dp * xh3, axis=0)
            dBE3 += tl.sum(dp, axis=0)
            dh = _norm_backward(dp * G3[None, :], xh3, r3, D, D_P)
            dW2 += tl.sum(dh[:, :, None] * a2[:, None, :], axis=0)
            dB2 += tl.sum(dh, axis=0)
            da = tl.sum(dh[:, :, None] * W2[None, :, :], axis=1)
            dp = tl.where(p2 > 0, da, 0.)
            dG2 += tl.sum(dp * xh2, axis=0)
            dBE2 += tl.sum(dp, axis=0)
            dh = _norm_backward(dp * G2[None, :], xh2, r2, D, D_P)
            dW1 += tl.sum(dh[:, :, None] * a1[:, None, :], axis=0)
            dB1 += tl.sum(dh, axis=0)
            da = tl.sum(dh[:, :, None] * W1[None, :, :], axis=1)
            dp = tl.where(p1 > 0, da, 0.)
            dG1 += tl.sum(dp * xh1, axis=0)
            dBE1 += tl.sum(dp, axis=0)
            dh = _norm_backward(dp * G1[None, :], xh1, r1, D, D_P)
            dW0 += tl.sum(dh[:, :, None] * x[:, None, :], axis=0)
            dB0 += tl.sum(dh, axis=0)
        d = tl.arange(0, D_P)
        h = tl.arange(0, H_P)
        # Padded blocks, in parameter order; the host slices them.
        offset = 0
        tl.store(grads_ptr + offset + d[:, None] * 2 + c2[None, :], dW0)
        offset += D_P * 2
        tl.store(grads_ptr + offset + d, dB0)
        offset += D_P
        tl.store(grads_ptr + offset + d, dG1)
        offset += D_P
        tl.store(grads_ptr + offset + d, dBE1)
        offset += D_P
        tl.store(grads_ptr + offset + d[:, None] * D_P + d[None, :], dW1)
        offset += D_P * D_P
        tl.store(grads_ptr + offset + d, dB1)
        offset += D_P
        tl.store(grads_ptr + offset + d, dG2)
        offset += D_P
        tl.store(grads_ptr + offset + d, dBE2)
        offset += D_P
        tl.store(grads_ptr + offset + d[:, None] * D_P + d[None, :], dW2)
        offset += D_P * D_P
        tl.store(grads_ptr + offset + d, dB2)
        offset += D_P
        tl.store(grads_ptr + offset + d, dG3)
        offset += D_P
        tl.store(grads_ptr + offset + d, dBE3)
        offset += D_P
        tl.store(grads_ptr + offset + h[:, None] * D_P + d[None, :], dW3)
        offset += H_P * D_P
        tl.store(grads_ptr + offset + h, dB3)


def _padded(n: int) -> int:
    return max(2, 1 << (n - 1).bit_length())


def _grad_layout(d: int, heads: int):
    """(padded shape, true shape) of each parameter gradient block, in parameter order."""
    dp, hp = _padded(d), _padded(heads)
    vec = ((dp, ), (d, ))
    return [((dp, 2), (d, 2)), vec, vec, vec, ((dp, dp), (d, d)), vec, vec, vec, ((dp, dp), (d, d)), vec, vec, vec,
            ((hp, dp), (heads, d)), ((hp, ), (heads, ))]


class _DPBFunction(torch.autograd.Function):

    @staticmethod
    def forward(ctx, offsets, *params):
        d, heads = params[0].shape[0], params[-1].shape[0]
        offsets = offsets.contiguous()
        params = tuple(p.contiguous() for p in params)
        rows = offsets.shape[0]
        out = offsets.new_empty(rows, heads)
        block_rows = _block_rows(_padded(d))
        grid = (triton.cdiv(rows, block_rows), )
        _dpb_forward_kernel[grid](offsets, out, *params, rows, D=d, H=heads, D_P=_padded(d), H_P=_padded(heads),
                                  BR=block_rows)
        ctx.save_for_backward(offsets, *params)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        offsets, *params = ctx.saved_tensors
        d, heads = params[0].shape[0], params[-1].shape[0]
        layout = _grad_layout(d, heads)
        sizes = [torch.Size(padded).numel() for padded, _ in layout]
        flat = offsets.new_empty(sum(sizes))
        _dpb_backward_kernel[(1, )](offsets, grad_out.contiguous(), *params, flat, offsets.shape[0], D=d, H=heads,
                                    D_P=_padded(d), H_P=_padded(heads), BR=_block_rows(_padded(d)))
        grads = []
        for block, (padded, true) in zip(flat.split(sizes), layout):
            block = block.view(padded)
            grads.append(block[:true[0], :true[1]] if len(true) == 2 else block[:true[0]])
        return (None, *grads)


def triton_dpb_available(device: torch.device) -> bool:
    """Whether :func:`dpb_mlp` takes the kernels for tensors on ``device``: CUDA
    (or CPU under ``TRITON_INTERPRET=1``), triton importable, eager mode, and
    ``MMVIT_TRITON_DPB`` not set to 0."""
    if triton is None or torch.compiler.is_compiling() or os.environ.get(ENV_SWITCH, '1') == '0':
        return False
    return device.type == 'cuda' or os.environ.get('TRITON_INTERPRET') == '1'


def dpb_mlp(offsets: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The DPB MLP: the Triton kernels for float32 tensors where
    :func:`triton_dpb_available`, :func:`dpb_mlp_reference` otherwise."""
    if offsets.dtype != torch.float32 or not triton_dpb_available(offsets.device):
        return dpb_mlp_reference(offsets, params)
    return _DPBFunction.apply(offsets, *params)
