"""What every backbone of this plugin shares: arch lookup, input checks,
``out_indices``, ``frozen_stages`` / ``norm_eval`` and pretrained loading."""
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Union

import torch
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...checkpoint import load_pretrained
from ..layers import check_checkpoint_mode
from ..layers.compile import enable_block_compile


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


def parse_out_indices(out_indices: Union[int, Sequence[int]], num_stages: int, owner: str) -> List[int]:
    """Normalise ``out_indices`` (negative indices allowed) and check its range."""
    if isinstance(out_indices, int):
        out_indices = [out_indices]
    if not isinstance(out_indices, Sequence) or not all(isinstance(i, int) for i in out_indices):
        raise TypeError(f'{owner}: out_indices must be an int or a sequence of ints, got {out_indices!r}')
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

    Subclasses build their modules, then implement :meth:`stage_modules`,
    :meth:`convert_state_dict` (released checkpoint → this project's keys) and
    ``forward``, calling :meth:`check_input` first.

    Args:
        in_channels (int): Channels of the input image.
        out_indices (int | Sequence[int]): Stages whose outputs are returned.
        frozen_stages (int): ``-1`` freezes nothing; ``k >= 0`` freezes the stem
            and the first ``k`` stages (eval mode, no gradients, kept through
            ``train()``), as ResNet's ``frozen_stages`` does.
        norm_eval (bool): Keep every BatchNorm in eval mode while training.
        with_cp (bool | str): Activation checkpointing of each block: ``True``
            recomputes whole blocks in backward (least memory, about a third
            more compute); ``'selective'`` keeps matrix-product, convolution
            and attention outputs and recomputes only norms, activations and
            copies (20-35 % less memory for 5-15 % more GPU time, but
            slow in host-bound eager mode: see ``maybe_checkpoint``).
        compile (bool | dict): ``True`` or a dict of ``torch.compile`` options
            (``backend``, ``mode``, ``options``, ``dynamic``, ``fullgraph``)
            compiles each block (:meth:`blocks`) at the first forward, with
            dynamic sizes unless ``dynamic=False``: regional compilation, so
            identical blocks share compiled code (see ``models/layers/compile.py``).
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH)``
            loads a released or converted checkpoint (``strict=False`` to load
            what fits despite key problems, ``prefix=`` to take a sub-model);
            anything else is handled by mmengine.
    """

    num_stages = 4
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
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'{owner}: in_channels must be a positive int, got {in_channels!r}')
        if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'{owner}: frozen_stages must be an int in [-1, {self.num_stages}], '
                             f'got {frozen_stages!r}')
        self.in_channels = in_channels
        self.out_indices = parse_out_indices(out_indices, self.num_stages, owner)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = check_checkpoint_mode(with_cp, owner)
        self.compile_options = enable_block_compile(self, compile)

    # -- hooks for subclasses -------------------------------------------------
    def stem_modules(self) -> List[nn.Module]:
        """Modules before the first stage (frozen when ``frozen_stages >= 0``)."""
        return []

    def stage_modules(self, index: int) -> List[nn.Module]:
        """Modules that make up stage ``index`` (its downsampler, blocks, norms)."""
        raise NotImplementedError

    def blocks(self) -> List[nn.Module]:
        """The transformer blocks, in order (what ``compile=True`` compiles one by one)."""
        raise NotImplementedError(f'{type(self).__name__} does not list its blocks, so compile= cannot be used')

    def convert_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        """Map a loaded state dict (any supported format) to this module's keys."""
        return state_dict

    def init_weights_from_scratch(self) -> None:
        """Random initialisation used when no pretrained checkpoint is given."""
        super().init_weights()

    # -- shared behaviour -------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error for a non-4D input or a wrong channel count."""
        name = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise TypeError(f'{name} expects a torch.Tensor, got {type(x).__name__}')
        if x.dim() != 4:
            raise ValueError(f'{name} expects a 4-D (N, C, H, W) input, got shape {tuple(x.shape)}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'{name} was built for {self.in_channels} input channels, '
                             f'got an input of shape {tuple(x.shape)}')

    def frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        modules = list(self.stem_modules())
        for index in range(self.frozen_stages):
            modules.extend(self.stage_modules(index))
        return modules

    def _freeze(self) -> None:
        for module in self.frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'MultiScaleBackbone':
        super().train(mode)
        self._freeze()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def init_weights(self) -> None:
        cfg = self.init_cfg
        if isinstance(cfg, Mapping) and cfg.get('type') == 'Pretrained':
            unknown = set(cfg) - {'type', 'checkpoint', 'prefix', 'strict'}
            if unknown:
                raise ValueError(f'{type(self).__name__}: unsupported Pretrained init_cfg keys '
                                 f'{sorted(unknown)}; valid: checkpoint, prefix, strict')
            if not cfg.get('checkpoint'):
                raise ValueError(f'{type(self).__name__}: init_cfg Pretrained needs a checkpoint path')
            load_pretrained(self, cfg['checkpoint'], self.convert_state_dict, self.expected_extra_keys,
                            strict=cfg.get('strict', True), prefix=cfg.get('prefix'))
            self._is_init = True
        else:
            self.init_weights_from_scratch()
        self._freeze()
