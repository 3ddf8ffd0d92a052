"""Registration helpers.

Every model of this plugin is registered in MMEngine's *root* ``MODELS``
registry.  mmdet, mmseg and mmpretrain registries are children of it and fall
back to their parent, so a plain ``type='SGFormer'`` builds under any of their
default scopes.
"""
import difflib
from typing import Dict, Type

from mmengine.registry import MODELS

#: Names this plugin registered, for the hint added to "not in the registry" errors.
PLUGIN_MODEL_NAMES: Dict[str, Type] = {}


def register_model(cls: Type) -> Type:
    """Register ``cls`` in MMEngine's root ``MODELS`` under its class name."""
    MODELS.register_module(module=cls)
    PLUGIN_MODEL_NAMES[cls.__name__] = cls
    return cls


#: Start of the hint; an error that already holds it is passed on unchanged.
HINT_MARKER = 'mmvit_backbones provides:'


def plugin_hint(obj_type: str) -> str:
    """The sentence appended to a registry KeyError for an unknown model type.

    :mod:`mmvit_backbones.compat` (``registry_hint``) appends it.
    """
    names = sorted(PLUGIN_MODEL_NAMES)
    by_lower = {name.lower(): name for name in names}
    close = [by_lower[m] for m in difflib.get_close_matches(obj_type.lower(), list(by_lower), n=1, cutoff=0.6)]
    hint = f'{HINT_MARKER} {", ".join(names)}.'
    if close:
        hint += f' Did you mean {close[0]!r}?'
    return hint
