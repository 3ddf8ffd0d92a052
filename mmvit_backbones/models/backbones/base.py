"""What every backbone of this plugin shares: arch lookup, argument and input
checks, ``out_indices``, output norms, ``frozen_stages`` / ``norm_eval``,
initialisation, pretrained loading, empty batches, autocast output dtype and
``feature_info``. A family implements only the hooks of
:class:`MultiScaleBackbone` (see its docstring and ``docs/backbones.md``)."""
import math
from numbers import Real
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Type, Union

import torch
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...checkpoint import fill_missing_output_norms, load_pretrained
from ..layers import check_checkpoint_mode
from ..layers.compile import enable_block_compile

Pair = Tuple[int, int]


# -- argument checks (one helper per kind of argument) ---------------------------
def resolve_arch(arch: Union[str, Mapping], arch_zoo: Mapping[str, Mapping],
                 essential_keys: Iterable[str], owner: str) -> Dict:
    """Look up ``arch`` (a zoo name, case-insensitive) or validate a custom dict."""
    if isinstance(arch, str):
        key = arch.lower()
        if key not in arch_zoo:
            raise ValueError(f'{owner}: unknown arch {arch!r}; choose one of {sorted(arch_zoo)} '
                             f'or pass a dict with keys {sorted(essential_keys)}')
        return dict(arch_zoo[key])
    if isinstance(arch, Mapping):
        missing = set(essential_keys) - set(arch)
        if missing:
            raise ValueError(f'{owner}: a custom arch needs the keys {sorted(essential_keys)}; '
                             f'missing {sorted(missing)}')
        return dict(arch)
    raise TypeError(f'{owner}: arch must be a str or a dict, got {type(arch).__name__}')


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def check_type(value: Any, name: str, owner: str, types: Union[Type, Tuple[Type, ...]]) -> Any:
    """Raise a TypeError unless ``value`` is an instance of ``types``.

    A bool is accepted only where ``bool`` is one of the types (not as an int).
    """
    types = types if isinstance(types, tuple) else (types, )
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        names = ' or '.join(t.__name__ for t in types)
        raise TypeError(f'{owner}: {name} must be a {names}, got {value!r} ({type(value).__name__})')
    return value


def check_rate(value: Any, name: str, owner: str, high: Optional[float] = 1.) -> float:
    """A real number (not a bool or a string): in ``[0, high)``, or ``> 0`` when
    ``high`` is None (ratios such as ``mlp_ratio``)."""
    if not _is_number(value):
        raise TypeError(f'{owner}: {name} must be a number, got {value!r} ({type(value).__name__})')
    if high is None and not value > 0:
        raise ValueError(f'{owner}: {name} must be > 0, got {value!r}')
    if high is not None and not 0 <= value < high:
        raise ValueError(f'{owner}: {name} must be in [0, {high:g}), got {value!r}')
    return value


def check_per_stage(values: Any, name: str, owner: str, num_stages: int,
                    kind: Union[Type, Tuple[Type, ...]] = int, allow_scalar: bool = False) -> List:
    """One positive value of ``kind`` per stage (bools rejected); with
    ``allow_scalar`` a single value is repeated for every stage.

    A stage depth of 0 is rejected like any other non-positive value: every
    backbone here needs at least one block per stage.
    """
    kinds = kind if isinstance(kind, tuple) else (kind, )

    def valid(v: Any) -> bool:
        return isinstance(v, kinds) and not isinstance(v, bool) and v > 0

    if allow_scalar and valid(values):
        return [values] * num_stages
    if (isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != num_stages
            or not all(valid(v) for v in values)):
        one = 'a positive value or ' if allow_scalar else ''
        raise ValueError(f'{owner}: {name} must be {one}{num_stages} positive '
                         f'{"/".join(k.__name__ for k in kinds)} values (one per stage), got {values!r}')
    return list(values)


def parse_out_indices(out_indices: Union[int, Sequence[int]], num_stages: int, owner: str) -> List[int]:
    """Normalise ``out_indices`` (negative indices allowed) and check its range.

    An empty sequence is rejected: a backbone that returns nothing is a
    configuration mistake, caught when the model is built.
    """
    if isinstance(out_indices, int) and not isinstance(out_indices, bool):
        out_indices = [out_indices]
    if (not isinstance(out_indices, Sequence) or isinstance(out_indices, str)
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in out_indices)):
        raise TypeError(f'{owner}: out_indices must be an int or a sequence of ints, got {out_indices!r}')
    if len(out_indices) == 0:
        raise ValueError(f'{owner}: out_indices is empty; name at least one stage '
                         f'(valid: {-num_stages}..{num_stages - 1})')
    parsed = []
    for index in out_indices:
        if not -num_stages <= index < num_stages:
            raise ValueError(f'{owner}: out_indices entry {index} is out of range for '
                             f'{num_stages} stages (valid: {-num_stages}..{num_stages - 1})')
        parsed.append(index % num_stages)
    if len(set(parsed)) != len(parsed):
        raise ValueError(f'{owner}: out_indices {list(out_indices)} repeats a stage')
    return sorted(parsed)


class MultiScaleBackbone(BaseModule):
    """Base class of the four-stage backbones.

    A family builds its modules, sets ``stage_channels`` (channels of each
    stage's output) and implements the hooks :meth:`forward_stages`,
    :meth:`stem_modules`, :meth:`stage_modules`, :meth:`init_weights_from_scratch`
    and :meth:`convert_state_dict`. Everything else is decided here, once:

    * **Initialisation** (:meth:`init_weights`), one rule: no ``init_cfg`` ->
      the family's own from-scratch initialisation
      (:meth:`init_weights_from_scratch`); ``dict(type='Pretrained', ...)`` ->
      the checkpoint is read, converted from any released or whole-model layout
      (:meth:`convert_state_dict`) and loaded loudly; any other ``init_cfg`` ->
      mmengine's initialisers alone, on PyTorch's default initialisation (the
      family's own init does not run).
    * **Inputs** (:meth:`check_input`): a 4-D floating-point tensor in the
      dtype of the backbone's parameters (``model.double()`` for float64
      inputs, ``model.half()`` for float16; a mismatch raises TypeError, an
      integer or bool image too: convert and normalise it first), with
      ``in_channels`` channels and sides of at least ``min_input_size``.
    * **Outputs**: one NCHW map per stage in ``out_indices``; under autocast
      every output is in the autocast dtype; a batch of 0 images gives empty
      maps of the shapes a batch of one would have (:meth:`output_sizes`),
      without running the network. :attr:`feature_info` describes them.
    * **Output norms** (:meth:`add_output_norms`): ``norm{i}`` per output
      stage; frozen with their stage, and a checkpoint that lacks them (trained
      with other ``out_indices``) leaves them at their initialisation.
    * **Freezing**: ``frozen_stages=k`` freezes the stem (and
      :meth:`stem_parameters`) and the first ``k`` stages: eval mode, no
      gradients, kept through ``train()``; ``norm_eval`` keeps every BatchNorm
      in eval mode.

    Args:
        in_channels (int): Channels of the input image.
        out_indices (int | Sequence[int]): Stages whose outputs are returned
            (not empty).
        frozen_stages (int): ``-1`` freezes nothing; ``k >= 0`` freezes the stem
            and the first ``k`` stages, as ResNet's ``frozen_stages`` does.
        norm_eval (bool): Keep every BatchNorm in eval mode while training.
        with_cp (bool | str): Activation checkpointing of each block: ``True``
            recomputes whole blocks in backward; ``'selective'`` keeps
            matrix-product, convolution and attention outputs and recomputes
            only norms, activations and copies (see ``maybe_checkpoint`` and
            ``docs/benchmarks/`` for the measured trade-off).
        compile (bool | dict): ``True`` or a dict of ``torch.compile`` options
            (``backend``, ``mode``, ``options``, ``dynamic``, ``fullgraph``)
            compiles each block (:meth:`blocks`) at the first forward, with
            dynamic sizes unless ``dynamic=False``: regional compilation, so
            identical blocks share compiled code (see ``models/layers/compile.py``).
        init_cfg (dict, optional): See the initialisation rule above.
            ``dict(type='Pretrained', checkpoint=PATH, strict=True, prefix=None)``:
            ``strict=False`` loads what fits despite key problems, ``prefix=``
            takes a sub-model.
    """

    num_stages = 4
    #: Output stride of each stage.
    stage_strides: Sequence[int] = (4, 8, 16, 32)
    #: How each stage rounds an odd size: ``'ceil'`` (padded convolutions) or ``'floor'``.
    size_rounding = 'ceil'
    #: Smallest input side the network accepts.
    min_input_size = 1
    #: Glob patterns of checkpoint keys a backbone expects and drops (e.g. heads).
    expected_extra_keys: Sequence[str] = ('head.*', )

    def __init__(self,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: Union[bool, str] = False,
                 compile: Union[bool, dict] = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        owner = type(self).__name__
        if not isinstance(in_channels, int) or isinstance(in_channels, bool) or in_channels < 1:
            raise ValueError(f'{owner}: in_channels must be a positive int, got {in_channels!r}')
        if (not isinstance(frozen_stages, int) or isinstance(frozen_stages, bool)
                or not -1 <= frozen_stages <= self.num_stages):
            raise ValueError(f'{owner}: frozen_stages must be an int in [-1, {self.num_stages}], '
                             f'got {frozen_stages!r}')
        self.in_channels = in_channels
        self.out_indices = parse_out_indices(out_indices, self.num_stages, owner)
        self.frozen_stages = frozen_stages
        self.norm_eval = check_type(norm_eval, 'norm_eval', owner, bool)
        self.with_cp = check_checkpoint_mode(with_cp, owner)
        #: Channels of each stage's output; set by the family.
        self.stage_channels: List[int] = []
        self._output_norm_names: List[str] = []
        self.compile_options = enable_block_compile(self, compile)

    # -- hooks for subclasses -------------------------------------------------
    def forward_stages(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """The family's network: a checked, non-empty image to the outputs."""
        raise NotImplementedError

    def stem_modules(self) -> List[nn.Module]:
        """Modules before the first stage (frozen when ``frozen_stages >= 0``)."""
        return []

    def stem_parameters(self) -> List[nn.Parameter]:
        """Parameters of the stem that no stem module owns (e.g. a position embedding)."""
        return []

    def stage_modules(self, index: int) -> List[nn.Module]:
        """Modules that make up stage ``index`` (its downsampler and blocks);
        the output norm added by :meth:`add_output_norms` is included by the base."""
        raise NotImplementedError

    def blocks(self) -> List[nn.Module]:
        """The transformer blocks, in order (what ``compile=True`` compiles one by one)."""
        raise NotImplementedError(f'{type(self).__name__} does not list its blocks, so compile= cannot be used')

    def convert_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        """Map a loaded state dict (any supported format) to this module's keys."""
        return state_dict

    def init_weights_from_scratch(self) -> None:
        """The family's random initialisation (used when there is no ``init_cfg``)."""

    # -- output norms -------------------------------------------------------------
    def add_output_norms(self, make_norm: Callable[[int], nn.Module]) -> None:
        """Register ``norm{i} = make_norm(channels_i)`` for every stage in ``out_indices``."""
        for i in self.out_indices:
            name = f'norm{i}'
            self.add_module(name, make_norm(self.stage_channels[i]))
            self._output_norm_names.append(name)

    def output_norm(self, index: int) -> Optional[nn.Module]:
        """The output norm of stage ``index``, or None."""
        name = f'norm{index}'
        return getattr(self, name) if name in self._output_norm_names else None

    # -- inputs and outputs -------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error for anything but the documented input (see the class docstring)."""
        name = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise TypeError(f'{name} expects a torch.Tensor, got {type(x).__name__}')
        if x.dim() != 4:
            raise ValueError(f'{name} expects a 4-D (N, C, H, W) input, got shape {tuple(x.shape)}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'{name} was built for {self.in_channels} input channels, '
                             f'got an input of shape {tuple(x.shape)}')
        if not x.is_floating_point():
            raise TypeError(f'{name} expects a floating-point image, got {x.dtype}; convert it '
                            '(e.g. x.float()) and normalise it first')
        param = next(self.parameters(), None)
        if param is not None and x.dtype != param.dtype:
            raise TypeError(f'{name} has {param.dtype} parameters and got a {x.dtype} input; '
                            f'cast the input (x.to({param.dtype})) or the model (model.to({x.dtype}))')
        if min(x.shape[-2:]) < self.min_input_size:
            raise ValueError(f'{name} needs inputs of at least {self.min_input_size}x{self.min_input_size} '
                             f'(its last stage has stride {self.stage_strides[-1]}), got {tuple(x.shape[-2:])}')

    def output_sizes(self, size: Pair) -> List[Pair]:
        """``(H_i, W_i)`` of every stage for an ``(H, W)`` input."""
        rounding = math.ceil if self.size_rounding == 'ceil' else math.floor
        return [(rounding(size[0] / s), rounding(size[1] / s)) for s in self.stage_strides]

    @property
    def feature_info(self) -> List[Dict[str, int]]:
        """One dict per output (in ``out_indices`` order), named as timm's:
        ``num_chs`` (channels), ``reduction`` (stride relative to the input)
        and ``stage`` (the stage index)."""
        return [dict(num_chs=self.stage_channels[i], reduction=self.stage_strides[i], stage=i)
                for i in self.out_indices]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """``(N, C_in, H, W)`` image to one ``(N, C_i, H_i, W_i)`` map per out index."""
        self.check_input(x)
        device_type = x.device.type
        autocast = torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)
        dtype = torch.get_autocast_dtype(device_type) if autocast else x.dtype
        if x.shape[0] == 0:
            sizes = self.output_sizes(tuple(x.shape[-2:]))
            return tuple(x.new_zeros((0, self.stage_channels[i], *sizes[i]), dtype=dtype) for i in self.out_indices)
        outs = self.forward_stages(x)
        if autocast:
            outs = tuple(out.to(dtype) for out in outs)
        return outs

    # -- freezing -----------------------------------------------------------------
    def frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        modules = list(self.stem_modules())
        for index in range(self.frozen_stages):
            modules.extend(self.stage_modules(index))
            norm = self.output_norm(index)
            if norm is not None:
                modules.append(norm)
        return modules

    def _freeze(self) -> None:
        for module in self.frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False
        if self.frozen_stages >= 0:
            for param in self.stem_parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'MultiScaleBackbone':
        super().train(mode)
        self._freeze()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    # -- initialisation -------------------------------------------------------------
    def prepare_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        """What a ``Pretrained`` init_cfg loads: :meth:`convert_state_dict`, then
        output norms the checkpoint lacks filled in from this module."""
        state_dict = dict(self.convert_state_dict(state_dict))
        own = self.state_dict()
        # Only a checkpoint of this family (some key fits) gets missing output norms filled in;
        # for any other the loader names every key.
        if self._output_norm_names and any(key in own for key in state_dict):
            fill_missing_output_norms(self, state_dict, self._output_norm_names)
        return state_dict

    def init_weights(self) -> None:
        """Initialise by the rule of the class docstring, then apply ``frozen_stages``."""
        cfg = self.init_cfg
        if cfg is None:
            self.init_weights_from_scratch()
        elif isinstance(cfg, Mapping) and cfg.get('type') == 'Pretrained':
            unknown = set(cfg) - {'type', 'checkpoint', 'prefix', 'strict'}
            if unknown:
                raise ValueError(f'{type(self).__name__}: unsupported Pretrained init_cfg keys '
                                 f'{sorted(unknown)}; valid: checkpoint, prefix, strict')
            if not cfg.get('checkpoint'):
                raise ValueError(f'{type(self).__name__}: init_cfg Pretrained needs a checkpoint path')
            load_pretrained(self, cfg['checkpoint'], self.prepare_state_dict, self.expected_extra_keys,
                            strict=cfg.get('strict', True), prefix=cfg.get('prefix'))
            self._is_init = True
        else:
            super().init_weights()
        self._freeze()
