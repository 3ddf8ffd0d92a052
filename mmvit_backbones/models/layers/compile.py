"""Regional compilation: ``torch.compile`` of each block of a backbone (its ``compile=`` argument).

Compiling the whole detector fails in mmengine's loop, and compiling a whole
backbone takes minutes; a block is small and every block of one kind and
width runs the same code, so dynamo traces it once and the other blocks reuse
the compiled graph (its guards check the parameters' shapes, not their
identity). Compile time is then per block kind and stage, not per block.
Sizes are dynamic by default, so that detection batches of new shapes reuse
the graphs instead of compiling again.
"""
import functools
from typing import Callable, Iterable, Optional, Union

import torch
import torch.fx.experimental._config as symbolic_shapes_config
from torch import nn

__all__ = ['parse_compile_options', 'compile_blocks', 'enable_block_compile']

#: Keyword arguments of ``torch.compile`` that ``compile=dict(...)`` may set.
COMPILE_KEYS = ('backend', 'mode', 'options', 'dynamic', 'fullgraph', 'disable')


def parse_compile_options(compile: Union[bool, dict, None], owner: str) -> Optional[dict]:
    """``compile=`` of a backbone as ``torch.compile`` keyword arguments, or None for eager.

    ``True`` is ``dict(dynamic=True)``; a dict is passed on with ``dynamic=True``
    unless it says otherwise.
    """
    if compile is None or compile is False:
        return None
    if compile is True:
        return dict(dynamic=True)
    if isinstance(compile, dict):
        unknown = sorted(set(compile) - set(COMPILE_KEYS))
        if unknown:
            raise ValueError(f'{owner}: unknown compile options {unknown}; valid: {list(COMPILE_KEYS)}')
        return dict(dict(dynamic=True), **compile)
    raise TypeError(f'{owner}: compile must be a bool or a dict of torch.compile options, '
                    f'got {compile!r} ({type(compile).__name__})')


def compile_blocks(blocks: Iterable[nn.Module], options: dict) -> int:
    """``block.compile(**options)`` for each block not compiled yet; returns how many were compiled.

    Dynamo allows ``recompile_limit`` (8) cache entries per code object before
    it falls back to eager; the blocks of a family share their ``forward``'s
    code, and each block kind and width needs an entry, so the limit is raised
    to the number of blocks plus dynamo's default allowance for recompiles.
    """
    blocks = [block for block in blocks if getattr(block, '_compiled_call_impl', None) is None]
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, len(blocks) + 8)
    if options.get('dynamic'):
        options = backend_outside_size_oblivious(options)
    for block in blocks:
        block.compile(**options)
        if options.get('dynamic'):
            block._compiled_call_impl = size_oblivious(block._compiled_call_impl)
    return len(blocks)


def backend_outside_size_oblivious(options: dict) -> dict:
    """``options`` with the backend (and its ``mode`` / ``options``) wrapped to run with ``backed_size_oblivious`` off.

    :func:`size_oblivious` is needed while dynamo traces the block, not while
    the backend compiles the traced graph: there AOTAutograd compares the
    strides of the tensors the forward saves for backward with the strides
    inductor chose (plain integers of the first call's sizes) through
    ``guard_or_true``, which treats every size symbol as unknown while
    ``backed_size_oblivious`` is on, so it finds every symbolic stride
    "different" and restrides the backward's inputs to the first call's
    integers: the backward then asserts those strides (``assert_size_stride``)
    and fails, or adds a guard that recompiles, at the next size. With it off
    the comparison uses the sizes' hints and keeps the symbolic strides.
    """
    options = dict(options)
    backend = options.pop('backend', 'inductor')
    mode, backend_options = options.pop('mode', None), options.pop('options', None)
    # torch.compile's own wrappers: they turn mode / options into the backend's settings.
    if backend == 'inductor':
        compiler = torch._TorchCompileInductorWrapper(mode, backend_options, options['dynamic'])
    else:
        compiler = torch._TorchCompileWrapper(backend, mode, backend_options, options['dynamic'])

    def backend_fn(graph_module, example_inputs):
        with symbolic_shapes_config.patch(backed_size_oblivious=False):
            return compiler(graph_module, example_inputs)

    return dict(options, backend=backend_fn)


def size_oblivious(fn: Callable) -> Callable:
    """``fn`` traced with sizes treated "size-obliviously" (``backed_size_oblivious``).

    With symbolic sizes, PyTorch's own view, reshape and stride logic asks
    whether a size is 1 (a broadcast, a view that is only possible then) and
    guards on the answer, so a graph traced where a group count was 1 would
    not serve a size where it is 2, and the reverse: the blocks would compile
    again for new input sizes. Oblivious to sizes 0 and 1, it takes the general
    path, which is also correct for them. Applied only while ``fn`` runs
    (tracing happens inside its first calls), not to the rest of the process.
    """
    @functools.wraps(fn)
    def call(*args, **kwargs):
        with symbolic_shapes_config.patch(backed_size_oblivious=True):
            return fn(*args, **kwargs)

    return call


class _CompileBlocksAtFirstCall:
    """Forward pre-hook that compiles the backbone's blocks, then removes itself.

    Later calls pay nothing. The hook holds its own handle: a deep copy of the
    backbone (e.g. an EMA model) copies the hook with the handle bound to the
    copy's hook dicts (deepcopy keeps one copy of each object), so the copy
    compiles its own blocks at its first call and removes its own hook.
    """

    def __init__(self, backbone: nn.Module) -> None:
        self.handle = backbone.register_forward_pre_hook(self)

    def __call__(self, backbone: nn.Module, args: tuple) -> None:
        compile_blocks(backbone.blocks(), backbone.compile_options)
        self.handle.remove()


def enable_block_compile(backbone: nn.Module, compile: Union[bool, dict, None]) -> Optional[dict]:
    """Parse ``compile`` for ``backbone`` and, unless it is off, compile its blocks at its first call.

    The blocks are compiled at the first forward, not here: a family builds
    them after the base class's ``__init__``, and a copy of the model made
    before (e.g. mmengine's EMA model) compiles its own blocks, not the
    original's. ``backbone.blocks()`` lists them. A copy made after the first
    call would run the original's blocks (``nn.Module.compile`` binds them):
    copy before, or build a new model.
    """
    options = parse_compile_options(compile, type(backbone).__name__)
    if options is not None:
        _CompileBlocksAtFirstCall(backbone)
    return options
