"""Exporting a backbone with ``torch.export`` or to ONNX (``tools/deployment/export_backbone.py``).

A backbone is named as ``Type:arch`` (``CrossFormer:s``) or by a config file
whose ``model.backbone`` (or ``model``, when that is a backbone) is built under
the config's default scope. The exported graph takes one image batch
``(N, 3, H, W)`` and returns the backbone's outputs (``out0``, ``out1``, ...).
With ``dynamic=True`` the batch size, height and width are symbolic; otherwise
the graph holds for the export size only.

A dynamic graph holds for the sizes on which every layer takes the branches it
took at the export size (``program.range_constraints``; outside them the
program refuses the input): e.g. whether a stage's map is one group along an
axis or several (Pale, CrossFormer) or is smaller than a CrossFormer group.
Export at a size like the ones deployed.
"""
import os
import os.path as osp
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

#: Output formats: a ``torch.export`` program file (``torch.export.save``) or an ONNX model.
FORMATS = ('export', 'onnx')


def build_backbone(spec: str, options: Optional[Dict[str, Any]] = None) -> nn.Module:
    """The backbone ``spec`` names (``Type:arch`` or a config file), in eval mode."""
    from mmengine.registry import MODELS

    from .registry import PLUGIN_MODEL_NAMES
    options = dict(options or {})
    if spec.endswith('.py'):
        from mmengine.config import Config

        from .runtime import build_model_from_config
        cfg = Config.fromfile(spec)
        model_cfg = cfg.model.get('backbone', cfg.model).copy()
        model_cfg.update(options)
        model = build_model_from_config(cfg, model_cfg)
    else:
        type_name, sep, arch = spec.partition(':')
        if not sep or type_name not in PLUGIN_MODEL_NAMES or not arch:
            raise ValueError(f'a backbone is a config file or Type:arch with Type one of '
                             f'{sorted(PLUGIN_MODEL_NAMES)}, got {spec!r}')
        model = MODELS.build(dict(type=type_name, arch=arch, **options))
    return model.eval()


def example_input(shape: Sequence[int], batch_size: int = 1) -> torch.Tensor:
    """A random image batch of ``shape = (H, W)``."""
    if len(shape) != 2 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f'shape must be two positive ints (H, W), got {tuple(shape)!r}')
    return torch.randn(batch_size, 3, *shape)


def dynamic_shapes(dynamic: bool) -> Optional[Dict[str, Dict[int, Any]]]:
    """Batch, height and width symbolic (``torch.export.Dim.AUTO``), or nothing symbolic."""
    if not dynamic:
        return None
    auto = torch.export.Dim.AUTO
    return {'x': {0: auto, 2: auto, 3: auto}}


def export_batch_size(dynamic: bool) -> int:
    """The example batch: 2 for a dynamic graph (a batch of 1 would be specialised), else 1."""
    return 2 if dynamic else 1


def export_program(model: nn.Module, shape: Sequence[int], dynamic: bool = False) -> torch.export.ExportedProgram:
    """``torch.export`` the backbone's forward at ``shape = (H, W)`` (eval mode; see :func:`export_batch_size`)."""
    model.eval()
    with torch.no_grad():
        return torch.export.export(model, (example_input(shape, export_batch_size(dynamic)), ),
                                   dynamic_shapes=dynamic_shapes(dynamic))


def output_names(model: nn.Module, shape: Sequence[int]) -> Tuple[str, ...]:
    """``out0``, ``out1``, ... for each output of the backbone."""
    with torch.no_grad():
        outputs = model.eval()(example_input(shape))
    return tuple(f'out{i}' for i in range(len(outputs)))


def export_onnx(model: nn.Module, shape: Sequence[int], out: str, dynamic: bool = False) -> str:
    """Write the backbone as an ONNX model (through ``torch.export``, the dynamo exporter)."""
    names = output_names(model, shape)
    with torch.no_grad():
        torch.onnx.export(model, (example_input(shape, export_batch_size(dynamic)), ), out, dynamo=True,
                          input_names=['x'], output_names=list(names), dynamic_shapes=dynamic_shapes(dynamic),
                          external_data=False)
    return out


def export_backbone(spec: str, fmt: str, shape: Sequence[int], out: str, dynamic: bool = False) -> str:
    """Export the backbone ``spec`` names as ``fmt`` to ``out``; returns ``out``."""
    if fmt not in FORMATS:
        raise ValueError(f'format must be one of {FORMATS}, got {fmt!r}')
    model = build_backbone(spec)
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    if fmt == 'onnx':
        return export_onnx(model, shape, out, dynamic)
    torch.export.save(export_program(model, shape, dynamic), out)
    return out
