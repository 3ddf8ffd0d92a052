"""``compile=`` of every backbone: per-block ``torch.compile`` with dynamic sizes.

The ``eager`` backend runs dynamo's captured graphs with ordinary ops: these
tests check tracing, graph sharing between identical blocks and recompiles
without paying for code generation on CPU; one small test runs inductor.
"""
import copy
import os
import shutil

import pytest
import torch
import torch.fx.experimental._config as symbolic_shapes_config
from torch._dynamo.utils import counters

from mmvit_backbones.models.backbones import CrossFormer, PaleTransformer, SGFormer
from mmvit_backbones.models.backbones.crossformer import CrossFormerBlock
from mmvit_backbones.models.layers.compile import compile_blocks, parse_compile_options

EAGER = dict(backend='eager')
# Tiny variants with every block kind: CrossFormer SDA + LDA, Pale, SG-Former hybrid-scale + self-guided + global.
BACKBONES = {
    'crossformer': lambda **kw: CrossFormer(
        arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]), drop_path_rate=0., **kw),
    'pale': lambda **kw: PaleTransformer(
        arch=dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_heads=[2, 2, 4, 4]), drop_path_rate=0.,
        **kw),
    'sgformer': lambda **kw: SGFormer(
        arch=dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 1], num_heads=[2, 2, 4, 8]), drop_path_rate=0.,
        **kw),
}
# A block compiles one graph per branch its sizes can take (a map that needs padding or not, one group or
# several, Pale's square maps in one attention call), each with dynamic sizes: SIZES reach every branch of these
# tiny models, NEW_SIZES must then add no graph (seen 2026-12-05: CrossFormer 8 -> 10 -> 12 graphs over SIZES;
# Pale 4 -> 5 -> 6: one per stage width, one where a map's height equals its channel count, which PyTorch's
# convolution specialises, and one for a stage with one group along one axis only). SG-Former: its own test below.
SIZES = [(64, 96), (96, 64), (80, 112), (112, 80), (64, 64), (64, 128), (128, 64)]
NEW_SIZES = [(72, 104), (96, 128), (80, 80)]


def unique_graphs() -> int:
    return counters['stats']['unique_graphs']


def test_parse_compile_options():
    assert parse_compile_options(False, 'X') is None
    assert parse_compile_options(True, 'X') == dict(dynamic=True)
    assert parse_compile_options(dict(backend='eager'), 'X') == dict(dynamic=True, backend='eager')
    assert parse_compile_options(dict(dynamic=False, mode='max-autotune'), 'X') == dict(dynamic=False,
                                                                                         mode='max-autotune')
    with pytest.raises(ValueError, match='unknown compile options'):
        parse_compile_options(dict(dinamic=True), 'X')
    with pytest.raises(TypeError, match='compile must be'):
        parse_compile_options('yes', 'X')


def test_blocks_compile_at_the_first_forward_only():
    model = BACKBONES['pale'](compile=EAGER)
    assert model.compile_options == dict(dynamic=True, backend='eager')
    assert all(getattr(block, '_compiled_call_impl', None) is None for block in model.blocks())
    # A copy made before the first call (e.g. an EMA model) compiles its own blocks, not the original's.
    twin = copy.deepcopy(model)
    torch._dynamo.reset()
    model(torch.randn(1, 3, 64, 64))
    assert len(model.blocks()) == 4 and all(block._compiled_call_impl is not None for block in model.blocks())
    assert all(getattr(block, '_compiled_call_impl', None) is None for block in twin.blocks())
    assert compile_blocks(model.blocks(), EAGER) == 0  # already compiled: nothing to do
    # The hook removed itself: later calls do not list the blocks again.
    listed = []
    model.blocks = lambda original=model.blocks: listed.append(1) or original()
    model(torch.randn(1, 3, 64, 64))
    assert not listed and not model._forward_pre_hooks
    # The copy compiles its own blocks at its first call, then removes its own hook; the original's stay.
    compiled = [block._compiled_call_impl for block in model.blocks()]
    twin(torch.randn(1, 3, 64, 64))
    assert all(block._compiled_call_impl is not None for block in twin.blocks()) and not twin._forward_pre_hooks
    assert [block._compiled_call_impl for block in model.blocks()] == compiled


@pytest.mark.parametrize('name', ['crossformer', 'pale'])
def test_compiled_blocks_match_eager_without_recompiles(name):
    torch.manual_seed(0)
    eager = BACKBONES[name]()
    compiled = BACKBONES[name](compile=EAGER)
    compiled.load_state_dict(eager.state_dict())
    torch._dynamo.reset()
    counters.clear()

    x = torch.randn(2, 3, *SIZES[0])
    params = list(eager.parameters())
    expected = eager(x)
    expected_grads = torch.autograd.grad(sum(o.square().mean() for o in expected), params)
    got = compiled(x)
    got_grads = torch.autograd.grad(sum(o.square().mean() for o in got), list(compiled.parameters()))
    for out, ref in zip(got, expected):
        torch.testing.assert_close(out, ref)
    for grad, ref in zip(got_grads, expected_grads):
        torch.testing.assert_close(grad, ref)
    assert not counters['graph_break'], dict(counters['graph_break'])
    first = unique_graphs()
    # One graph per block kind and stage at most: identical blocks share theirs.
    assert 0 < first <= len(compiled.blocks())

    def run(sizes):
        for size in sizes:  # with autograd on, as the first call (grad mode is part of the guards)
            x = torch.randn(2, 3, *size)
            for out, ref in zip(compiled(x), eager(x)):
                torch.testing.assert_close(out, ref)

    run(SIZES[1:])
    every_branch = unique_graphs()
    run(NEW_SIZES)
    # Once every branch has its graph, new sizes compile nothing.
    assert unique_graphs() == every_branch, dict(counters['recompiles'])


def test_sgformer_blocks_do_not_recompile_for_a_new_size():
    torch.manual_seed(0)
    eager = BACKBONES['sgformer']()
    compiled = BACKBONES['sgformer'](compile=EAGER)
    compiled.load_state_dict(eager.state_dict())
    torch._dynamo.reset()
    counters.clear()

    def step(model, x):
        outs = model(x)
        return outs, torch.autograd.grad(sum(o.square().mean() for o in outs), [x, *model.parameters()])

    for i, size in enumerate((SIZES[0], NEW_SIZES[0])):
        x = torch.randn(1, 3, *size, requires_grad=True)
        (outs, grads), (ref_outs, ref_grads) = step(compiled, x), step(eager, x)
        for got, ref in zip((*outs, *grads), (*ref_outs, *ref_grads)):
            torch.testing.assert_close(got, ref)
        if i == 0:
            first = unique_graphs()
    assert unique_graphs() == first, dict(counters['recompiles'])


def test_backend_compiles_with_size_oblivious_tracing_off():
    # Dynamo traces the blocks size-obliviously; the backend (AOTAutograd, inductor) must not: under it AOTAutograd
    # restrides the tensors saved for backward to the first call's integer strides (inductor test below).
    seen = []

    def backend(graph_module, example_inputs):
        seen.append(symbolic_shapes_config.backed_size_oblivious)
        return graph_module.forward

    block = CrossFormerBlock(dim=16, num_heads=1, group_size=7, interval=2, long_distance=False, lda_version=2)
    torch._dynamo.reset()
    compile_blocks([block], dict(backend=backend, dynamic=True))
    x = torch.randn(2, 18, 26, 16)
    torch.testing.assert_close(block(x), block.forward(x))
    assert seen == [False]
    assert not symbolic_shapes_config.backed_size_oblivious


@pytest.mark.skipif(shutil.which(os.environ.get('CXX', 'g++')) is None, reason='inductor on CPU needs a C++ compiler')
def test_inductor_block_compiles_once_for_forward_and_backward():
    # The one inductor test (~40 s on 2 cores): a padded CrossFormer block, train-mode forward and backward at two
    # sizes; before the backend ran outside the size-oblivious tracing, the second size compiled again (or the
    # compiled backward failed its stride assertion).
    # Twice: the second time the compile caches hold the first one's graphs (as for a user's next run; an
    # AOTAutograd cache entry brought guards on the first size's token count).
    torch.manual_seed(0)
    eager = CrossFormerBlock(dim=16, num_heads=1, group_size=7, interval=2, long_distance=False, lda_version=2)
    for _ in range(2):
        block = copy.deepcopy(eager)
        torch._dynamo.reset()
        counters.clear()
        compile_blocks([block], dict(backend='inductor', dynamic=True))
        for size in [(18, 26), (22, 30)]:
            x = torch.randn(2, *size, 16, requires_grad=True)
            got, expected = block(x), eager(x)
            torch.testing.assert_close(got, expected)
            grads = torch.autograd.grad(got.square().mean(), [x, *block.parameters()])
            expected_grads = torch.autograd.grad(expected.square().mean(), [x, *eager.parameters()])
            for grad, ref in zip(grads, expected_grads):
                torch.testing.assert_close(grad, ref)
        assert unique_graphs() == 1, dict(counters['recompiles'])
