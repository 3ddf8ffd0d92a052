"""mmvit-backbones: SG-Former, Pale Transformer and CrossFormer(++) for OpenMMLab.

Importing the package registers every backbone (and the mmpretrain
classifier pieces) in MMEngine's root ``MODELS`` registry, so that mmdet,
mmseg and mmpretrain configs can build them by plain ``type=`` names after
``custom_imports=dict(imports=['mmvit_backbones'])``. What importing it
changes in other libraries is listed in :mod:`mmvit_backbones.compat`.
"""
from .stack import require_stack
from .version import __version__

require_stack()

# compat: every change to another library, see its docstring; models: registers the models.
from . import compat, models  # noqa: E402,F401,I001

compat.apply('trusted_local_loader')
compat.apply('registry_hint')
compat.apply('fused_attention')
compat.apply('fork_distribution_names')

__all__ = ['__version__']
