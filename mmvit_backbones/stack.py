"""Which OpenMMLab-compatible stack is installed: OpenMMLab's own or the maintained OneDL fork.

Both keep the import names (``mmengine``, ``mmcv``, ``mmdet``, ``mmseg``,
``mmpretrain``); only their distribution names differ. This package requires
neither by itself (``pip install mmvit-backbones[openmmlab]`` or ``[onedl]``),
so the import fails early and clearly when neither is present.
"""
import importlib.metadata
import importlib.util
from typing import Optional

#: Distribution of mmengine in each stack.
STACK_DISTRIBUTIONS = {'openmmlab': 'mmengine', 'onedl': 'onedl-mmengine'}

INSTALL_HELP = (
    'mmvit_backbones needs an OpenMMLab-compatible stack and found no mmengine. Install one:\n'
    "  pip install 'mmvit-backbones[openmmlab]'   # OpenMMLab: mmcv 2.1.0, mmdet 3.3.0, mmseg 1.2.2, mmpretrain 1.2.0\n"
    "  pip install 'mmvit-backbones[onedl]'       # the maintained fork (onedl-mmcv 2.3.6, ...)\n"
    'or, from a clone, `make setup` / `make setup STACK=onedl` (see the README, "Choosing a stack").')


def installed_stack() -> Optional[str]:
    """``'openmmlab'``, ``'onedl'`` or ``None``, from the distribution that provides mmengine."""
    for stack, distribution in STACK_DISTRIBUTIONS.items():
        try:
            importlib.metadata.distribution(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        return stack
    return None


def require_stack() -> None:
    """Raise an ImportError saying how to install a stack when ``mmengine`` cannot be imported."""
    if importlib.util.find_spec('mmengine') is None:
        raise ImportError(INSTALL_HELP)
