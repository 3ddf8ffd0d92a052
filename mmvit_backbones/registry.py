"""Registration helpers.

Every model of this plugin is registered in MMEngine's *root* ``MODELS``
registry.  mmdet, mmseg and mmpretrain registries are children of it and fall
back to their parent, so a plain ``type='SGFormer'`` builds under any of their
default scopes.
"""
import difflib
import functools
from typing import Any, Dict, Optional, Type

from mmengine.registry import MODELS

#: Names this plugin registered, for the hint added to "not in the registry" errors.
PLUGIN_MODEL_NAMES: Dict[str, Type] = {}


def register_model(cls: Type) -> Type:
    """Register ``cls`` in MMEngine's root ``MODELS`` under its class name."""
    MODELS.register_module(module=cls)
    PLUGIN_MODEL_NAMES[cls.__name__] = cls
    return cls


def plugin_hint(obj_type: str) -> str:
    """The sentence appended to a registry KeyError for an unknown model type."""
    names = sorted(PLUGIN_MODEL_NAMES)
    close = difflib.get_close_matches(obj_type, names, n=1, cutoff=0.6)
    hint = f'mmvit_backbones provides: {", ".join(names)}.'
    if close:
        hint += f' Did you mean {close[0]!r}?'
    return hint


def install_registry_hint() -> None:
    """Make unknown model types name this plugin's models in the KeyError.

    ``Registry.build`` of the model registries calls
    ``mmengine.registry.build_functions.build_from_cfg`` through its module
    global, so wrapping that one function adds the hint to the error mmengine
    raises; successful builds and other errors pass through untouched.
    """
    from mmengine.registry import build_functions

    original = build_functions.build_from_cfg
    if getattr(original, '_mmvit_hint', False):
        return

    @functools.wraps(original)
    def build_from_cfg(cfg: Any, registry: Any, default_args: Optional[dict] = None) -> Any:
        try:
            return original(cfg, registry, default_args)
        except KeyError as err:
            obj_type = cfg.get('type') if hasattr(cfg, 'get') else None
            if (registry.name != 'model' or not isinstance(obj_type, str)
                    or registry.get(obj_type) is not None):
                raise
            message = err.args[0] if err.args else ''
            raise KeyError(f'{message} {plugin_hint(obj_type)}') from err

    build_from_cfg._mmvit_hint = True
    build_functions.build_from_cfg = build_from_cfg
