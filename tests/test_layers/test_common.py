import functools

import pytest
import torch
import torch.utils.checkpoint as cp
from torch import nn

from mmvit_backbones.models.layers import Mlp, check_checkpoint_mode, maybe_checkpoint


class Block(nn.Module):
    """Norm, MLP with dropout, residual: matrix products plus cheap elementwise work."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return x + self.drop(self.mlp(self.norm(x)))


def saved_bytes(fn, x):
    """Bytes of the distinct storages autograd keeps for backward, and the loss."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = fn(x).square().mean()
    return sum(storages.values()), loss


@pytest.mark.parametrize('with_cp', [True, 'selective'])
def test_checkpointing_modes_match_plain_outputs_and_gradients(with_cp):
    block = Block().train()
    x = torch.randn(4, 64, 16)
    results = []
    for mode in (False, with_cp):
        torch.manual_seed(0)  # same dropout mask: the recomputation must replay it
        inp = x.clone().requires_grad_()
        out = maybe_checkpoint(block, inp, with_cp=mode)
        out.square().mean().backward()
        results.append((out.detach(), inp.grad, block.mlp.fc1.weight.grad.clone()))
        block.zero_grad()
    for plain, checkpointed in zip(*results):
        torch.testing.assert_close(checkpointed, plain)


def test_selective_checkpointing_keeps_less_than_plain_and_more_than_full(monkeypatch):
    # SAC keeps its cached outputs outside saved-tensor hooks unless asked to route them through.
    monkeypatch.setattr(cp, 'checkpoint', functools.partial(cp.checkpoint, respect_saved_tensors_hooks=True))
    block = Block().train()
    x = torch.randn(4, 64, 16, requires_grad=True)
    kept = {mode: saved_bytes(functools.partial(maybe_checkpoint, block, with_cp=mode), x)[0]
            for mode in (False, 'selective', True)}
    # Plain keeps the GELU input and output (8 widths per token); selective only fc1's output.
    assert kept[True] < kept['selective'] < 0.8 * kept[False]


def test_no_checkpointing_without_autograd(monkeypatch):
    calls = []
    monkeypatch.setattr(cp, 'checkpoint', lambda *args, **kwargs: calls.append(1))
    block = Block().eval()
    x = torch.randn(2, 8, 16)
    with torch.no_grad():
        out = maybe_checkpoint(block, x, with_cp='selective')
    assert not calls
    torch.testing.assert_close(out, block(x))
    maybe_checkpoint(block, x, with_cp=True)
    assert calls == [1]


def test_check_checkpoint_mode():
    assert check_checkpoint_mode('selective', 'Net') == 'selective'
    assert check_checkpoint_mode(False, 'Net') is False
    with pytest.raises(ValueError, match=r"Net: with_cp must be False, True or 'selective', got 1"):
        check_checkpoint_mode(1, 'Net')
