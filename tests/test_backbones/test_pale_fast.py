"""Pale's fused Q/K/V path and one-call attention equal the former implementation
(``tests/reference/pale_reference.py``), forward and gradients."""
import pytest
import torch
from mmvit_reference.pale_reference import PaleBlock as ReferenceBlock
from mmvit_reference.pale_reference import pale_layout

from mmvit_backbones.models.backbones.pale_transformer import PaleBlock, PaleLayouts, convert_separate_qkv


def randomize_(module):
    torch.manual_seed(1)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith('running_var'):
                tensor.copy_(torch.rand_like(tensor) + 0.5)
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor) * 0.3)
    return module


def block_pair(dims=16, heads=4):
    reference = randomize_(ReferenceBlock(dims, heads, 4., 0., dict(type='LN'), dict(type='BN')))
    block = PaleBlock(dims, heads, 4., 0., dict(type='LN'), dict(type='BN'))
    missing, unexpected = block.load_state_dict(convert_separate_qkv(reference.state_dict()), strict=True)
    return reference, block


@pytest.mark.parametrize('size, pale', [((14, 14), 7), ((9, 10), 3), ((5, 4), 7), ((12, 12), 5), ((8, 13), 7),
                                        ((16, 16), 4)])
@pytest.mark.parametrize('train', [True, False])
def test_block_equals_reference(size, pale, train):
    reference, block = block_pair()
    reference.train(train)
    block.train(train)
    x = torch.randn(2, size[0] * size[1], 16, dtype=torch.float64)
    reference.double()
    block.double()
    x_ref, x_new = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ref = reference(x_ref, pale_layout(size, (pale, pale)))
    out_new = block(x_new.unflatten(1, size), PaleLayouts.build(size, (pale, pale))).flatten(1, 2)
    torch.testing.assert_close(out_new, out_ref, rtol=1e-10, atol=1e-10)
    grad = torch.randn_like(out_ref)
    out_ref.backward(grad)
    out_new.backward(grad)
    torch.testing.assert_close(x_new.grad, x_ref.grad, rtol=1e-10, atol=1e-10)
    converted = convert_separate_qkv({n: p.grad for n, p in reference.named_parameters()})
    for name, param in block.named_parameters():
        torch.testing.assert_close(param.grad, converted[name], rtol=1e-10, atol=1e-10, msg=name)
    if train:  # BatchNorm running statistics move the same way
        converted = convert_separate_qkv(reference.state_dict())
        for name, buffer in block.named_buffers():
            torch.testing.assert_close(buffer, converted[name], rtol=1e-10, atol=1e-10, msg=name)


def saved_activation_bytes(module, forward):
    """Bytes of the unique non-parameter storages autograd keeps for backward while ``forward()`` runs."""
    own = {t.untyped_storage().data_ptr() for t in list(module.parameters()) + list(module.buffers())}
    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward()
    return sum(storages.values())


@pytest.mark.parametrize('size', [(14, 14), (13, 19)])
@pytest.mark.parametrize('heads', [2, 4])  # one head per branch makes some group layouts views of the map
@pytest.mark.parametrize('bf16', [False, True])
def test_block_keeps_no_more_for_backward_than_reference(size, heads, bf16):
    """Peak training memory: the fused path saves at most what the three separate convolutions saved.

    Plus, in fp32, its filters in (channel, q/k/v) order: a copy of a parameter the convolution keeps
    (kilobytes; under autocast both paths keep a bf16 copy of their filters).
    """
    reference, block = block_pair(dims=32, heads=heads)
    saved = []
    for module, call in ((reference, lambda t: reference(t, pale_layout(size, (7, 7)))),
                         (block, lambda t: block(t.unflatten(1, size), PaleLayouts.build(size, (7, 7))))):
        x = torch.randn(2, size[0] * size[1], 32, requires_grad=True)

        def forward(call=call, x=x):
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
                return call(x)
        saved.append(saved_activation_bytes(module.train(), forward))
    filters = 0 if bf16 else block.attn.qkv.depthwise.weight.nbytes
    assert saved[1] <= saved[0] + filters, f'fused block keeps {saved[1]} bytes for backward, the reference {saved[0]}'
