"""mmvit-backbones: SG-Former, Pale Transformer and CrossFormer(++) for OpenMMLab.

Importing the package registers every backbone (and the mmpretrain
classifier pieces) in MMEngine's root ``MODELS`` registry, so that mmdet,
mmseg and mmpretrain configs can build them by plain ``type=`` names after
``custom_imports=dict(imports=['mmvit_backbones'])``.
"""
from .checkpoint import install_trusted_local_loader
from .registry import install_registry_hint
from .version import __version__

install_trusted_local_loader()
install_registry_hint()

from . import models  # noqa: E402,F401  (registers the models)

__all__ = ['__version__']
