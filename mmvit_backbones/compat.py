"""Every change this plugin makes to another library, in one place.

``mmvit_backbones/__init__.py`` applies each patch below by name with
:func:`apply`. Each one is decided by what the installed library *does*
(feature detection), never by its version number, and each can be turned off
with its environment variable set to ``0`` before the first import. What was
decided is in :data:`STATUS` (``'applied'``, ``'not needed'`` or ``'disabled'``).

``trusted_local_loader`` (``MMVIT_TRUSTED_LOCAL_LOADER``)
    Changes mmengine's ``CheckpointLoader`` loader for local paths (prefix
    ``''``) to :func:`mmvit_backbones.checkpoint.load_trusted_local`:
    ``weights_only=True`` first, full unpickling only as a fallback for local
    files the user named (``MMVIT_WEIGHTS_ONLY=1`` forbids it). Installed where
    mmengine's own local loader refuses a checkpoint holding Python objects
    (torch >= 2.6 with OpenMMLab's mmengine 0.10.x, which does not pass
    ``weights_only``), or where ``MMVIT_WEIGHTS_ONLY=1`` is set (only this
    loader honours it); not installed where mmengine loads such a file itself
    (torch < 2.6, or the OneDL fork's mmengine 0.10.12, whose ``_safe_torch_load``
    falls back to full unpickling with a warning, for every scheme). There,
    mmengine's local loader is kept but wrapped to run
    :func:`mmvit_backbones.checkpoint.check_checkpoint_file` first, so a file
    that is no checkpoint fails with its path before anything is unpickled.
    The switch turns both off. Guarded by ``tests/test_checkpoint/test_loading.py``,
    ``tests/test_checkpoint/test_bad_files.py`` and ``tests/test_compat.py``.
``registry_hint`` (``MMVIT_REGISTRY_HINT``)
    Wraps ``mmengine.registry.build_functions.build_from_cfg`` so that a
    "not in the registry" ``KeyError`` for a model type close to one of this
    plugin's names ends with the names it provides and the closest match, once.
    Needed wherever mmengine's model registries build through that module
    global (mmengine 0.10.x, OpenMMLab and OneDL); skipped otherwise. Guarded by
    ``tests/test_registration/test_registration.py`` and ``tests/test_compat.py``.
``fused_attention`` (``MMVIT_FUSED_ATTENTION``)
    Not a patch of another library but the one global switch of this plugin:
    :func:`mmvit_backbones.models.layers.attention` takes torch's
    ``scaled_dot_product_attention`` (fused kernels) when the installed torch's
    SDPA accepts ``scale`` (torch >= 2.1), else the plain softmax path.
    Guarded by ``tests/test_layers/test_attention.py`` and ``tests/test_compat.py``.
``fork_distribution_names`` (``MMVIT_FORK_DISTRIBUTION_NAMES``)
    Makes mmengine's ``is_installed`` / ``get_installed_path`` (used to resolve
    ``mmseg::`` / ``mmdet::`` / ``mmpretrain::`` config paths) find a library
    that is importable but installed under the OneDL fork's distribution name
    (``onedl-mmsegmentation`` for ``mmsegmentation``, module ``mmseg``).
    Needed where mmengine reports such a package as missing (the OneDL stack:
    ``ModuleNotFoundError: mmsegmentation is not installed``); not applied
    on OpenMMLab's stack. Guarded by ``tests/test_compat.py`` and the
    ``mmseg::`` configs of ``tests/test_registration`` and ``tests/test_configs``.
"""
import argparse
import contextlib
import difflib
import functools
import importlib.metadata
import importlib.util
import inspect
import io
import os
import os.path as osp
import tempfile
import warnings
from typing import Any, Callable, Dict, Optional

import torch

#: Name -> what :func:`apply` decided: 'applied', 'not needed' or 'disabled'.
STATUS: Dict[str, str] = {}

#: Prefix of the OneDL fork's distribution names (``onedl-mmsegmentation``).
FORK_PREFIX = 'onedl-'


def env_enabled(variable: str) -> bool:
    """Whether a patch's switch is on: anything but ``0`` / ``false`` / ``no`` / ``off``."""
    return os.environ.get(variable, '1').strip().lower() not in ('0', 'false', 'no', 'off')


# --------------------------------------------------------------------------- trusted_local_loader
def local_loader_refuses_python_objects() -> bool:
    """Whether mmengine's current local loader fails on a checkpoint with a pickled object."""
    from mmengine.runner.checkpoint import CheckpointLoader

    loader = CheckpointLoader._get_checkpoint_loader('/local/file.pth')
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'probe.pth')
        torch.save({'args': argparse.Namespace(probe=1), 'w': torch.zeros(1)}, path)
        # The fork's loader prints a warning when it falls back; that is what is being probed.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter('ignore')
            try:
                loaded = loader(path, 'cpu')
            except Exception:  # noqa: BLE001 -- any failure means the loader cannot take it
                return True
    return not (isinstance(loaded, dict) and getattr(loaded.get('args'), 'probe', None) == 1)


def trusted_local_loader_needed() -> bool:
    """mmengine's loader refuses trusted local files, or it would unpickle where the user forbids it."""
    return weights_only_requested() or local_loader_refuses_python_objects()


def weights_only_requested() -> bool:
    """``MMVIT_WEIGHTS_ONLY`` set: only :func:`load_trusted_local` honours it."""
    return os.environ.get('MMVIT_WEIGHTS_ONLY', '0') not in ('', '0')


def install_trusted_local_loader() -> None:
    """Register :func:`load_trusted_local` as mmengine's loader for local paths.

    This covers ``load_from``, ``--resume`` and ``init_cfg=dict(type='Pretrained')``
    alike, since they all go through ``CheckpointLoader``.
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    from .checkpoint import load_trusted_local
    CheckpointLoader.register_scheme(prefixes='', loader=load_trusted_local, force=True)


def install_checked_local_loader() -> None:
    """Where mmengine keeps its own local loader, check the file first.

    A file that is no checkpoint (empty, text, truncated, ...) then fails with
    its path and fault before mmengine's loader unpickles anything (the OneDL
    fork's falls back to full unpickling).
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    from .checkpoint import check_checkpoint_file
    own_loader = CheckpointLoader._get_checkpoint_loader('/local/file.pth')

    @functools.wraps(own_loader)
    def checked_local_loader(filename: str, map_location: Any = None) -> Any:
        check_checkpoint_file(osp.expanduser(filename))
        return own_loader(filename, map_location)

    CheckpointLoader.register_scheme(prefixes='', loader=checked_local_loader, force=True)


# --------------------------------------------------------------------------- registry_hint
def registry_builds_through_build_from_cfg() -> bool:
    """Whether mmengine's model registries call ``build_functions.build_from_cfg`` by its global name."""
    from mmengine.registry import build_functions

    builder = getattr(build_functions, 'build_model_from_cfg', None)
    return (callable(getattr(build_functions, 'build_from_cfg', None)) and builder is not None
            and 'build_from_cfg' in builder.__code__.co_names)


def close_plugin_name(obj_type: str) -> Optional[str]:
    """This plugin's registered name closest to ``obj_type`` (case-insensitive), if any is close."""
    from .registry import PLUGIN_MODEL_NAMES

    by_lower = {name.lower(): name for name in PLUGIN_MODEL_NAMES}
    match = difflib.get_close_matches(obj_type.lower(), list(by_lower), n=1, cutoff=0.8)
    return by_lower[match[0]] if match else None


def install_registry_hint() -> None:
    """Make an unknown model type close to one of this plugin's names say so in the KeyError."""
    from mmengine.registry import build_functions

    from .registry import HINT_MARKER, plugin_hint

    original = build_functions.build_from_cfg
    if getattr(original, '_mmvit_hint', False):
        return

    @functools.wraps(original)
    def build_from_cfg(cfg: Any, registry: Any, default_args: Optional[dict] = None) -> Any:
        try:
            return original(cfg, registry, default_args)
        except KeyError as err:
            obj_type = cfg.get('type') if hasattr(cfg, 'get') else None
            message = str(err.args[0]) if err.args else ''
            # The innermost failed build adds the hint; outer builds of the same error pass it on.
            if (registry.name != 'model' or not isinstance(obj_type, str) or HINT_MARKER in message
                    or f'{obj_type} is not in the' not in message
                    or close_plugin_name(obj_type) is None):
                raise
            raise KeyError(f'{message} {plugin_hint(obj_type)}') from err

    build_from_cfg._mmvit_hint = True
    build_functions.build_from_cfg = build_from_cfg


# --------------------------------------------------------------------------- fused_attention
def sdpa_takes_scale() -> bool:
    """Whether torch's ``scaled_dot_product_attention`` exists and accepts ``scale``."""
    sdpa = getattr(torch.nn.functional, 'scaled_dot_product_attention', None)
    if sdpa is None:
        return False
    try:
        return 'scale' in inspect.signature(sdpa).parameters
    except (TypeError, ValueError):  # a builtin without a signature: try it
        q = torch.zeros(1, 1, 1)
        try:
            sdpa(q, q, q, scale=1.0)
        except TypeError:
            return False
        return True


def use_fused_attention() -> None:
    from .models.layers.attention import set_fused_attention_default
    set_fused_attention_default(True)


def use_plain_attention() -> None:
    from .models.layers.attention import set_fused_attention_default
    set_fused_attention_default(False)


# --------------------------------------------------------------------------- fork_distribution_names
def scope_modules() -> Dict[str, str]:
    """mmengine's ``module -> distribution`` map for ``scope::`` config paths (``mmseg`` -> ``mmsegmentation``)."""
    from mmengine.config import utils as config_utils
    return dict(getattr(config_utils, 'MODULE2PACKAGE', getattr(config_utils, 'PKG2PROJECT', {})))


def fork_distribution(package: str) -> Optional[str]:
    """``onedl-<package>`` when only the fork's distribution of ``package`` is installed."""
    for name in (package, FORK_PREFIX + package):
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        return None if name == package else name
    return None


def packages_mmengine_misses() -> Dict[str, str]:
    """Distributions mmengine calls missing although their module imports: ``package -> module``."""
    from mmengine.utils import package_utils

    missed = {}
    for module, package in scope_modules().items():
        if (importlib.util.find_spec(module) is not None and fork_distribution(package)
                and not package_utils.is_installed(package)):
            missed[package] = module
    return missed


def install_fork_distribution_names() -> None:
    """Rebind mmengine's ``is_installed`` / ``get_installed_path`` to know the fork's names."""
    import mmengine.config.config as config_module
    import mmengine.utils as utils_module
    from mmengine.utils import package_utils

    original_is_installed = package_utils.is_installed
    original_get_installed_path = package_utils.get_installed_path
    if getattr(original_is_installed, '_mmvit_fork', False):
        return
    package_modules = {package: module for module, package in scope_modules().items()}

    def fork_module(package: str) -> Optional[str]:
        module = package_modules.get(package)
        if module and fork_distribution(package) and importlib.util.find_spec(module) is not None:
            return module
        return None

    @functools.wraps(original_is_installed)
    def is_installed(package: str) -> bool:
        return original_is_installed(package) or fork_module(package) is not None

    @functools.wraps(original_get_installed_path)
    def get_installed_path(package: str) -> str:
        module = None if original_is_installed(package) else fork_module(package)
        if module is None:
            return original_get_installed_path(package)
        return osp.dirname(importlib.util.find_spec(module).origin)

    is_installed._mmvit_fork = True
    replacements = {original_is_installed: is_installed, original_get_installed_path: get_installed_path}
    for module in (package_utils, utils_module, config_module, _optional_module('mmengine.hub.hub')):
        if module is None:
            continue
        for name in ('is_installed', 'get_installed_path'):
            if getattr(module, name, None) in replacements:
                setattr(module, name, replacements[getattr(module, name)])


def _optional_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# --------------------------------------------------------------------------- the table
class Patch:
    """One change: whether it is needed, how to apply it, what to do otherwise, its switch."""

    def __init__(self, env: str, needed: Callable[[], bool], install: Callable[[], None],
                 otherwise: Optional[Callable[[], None]] = None, otherwise_when_disabled: bool = True) -> None:
        self.env = env
        self.needed = needed
        self.install = install
        self.otherwise = otherwise
        self.otherwise_when_disabled = otherwise_when_disabled


PATCHES: Dict[str, Patch] = {
    'trusted_local_loader': Patch('MMVIT_TRUSTED_LOCAL_LOADER', trusted_local_loader_needed,
                                  install_trusted_local_loader, otherwise=install_checked_local_loader,
                                  otherwise_when_disabled=False),
    'registry_hint': Patch('MMVIT_REGISTRY_HINT', registry_builds_through_build_from_cfg, install_registry_hint),
    'fused_attention': Patch('MMVIT_FUSED_ATTENTION', sdpa_takes_scale, use_fused_attention,
                             otherwise=use_plain_attention),
    'fork_distribution_names': Patch('MMVIT_FORK_DISTRIBUTION_NAMES', lambda: bool(packages_mmengine_misses()),
                                     install_fork_distribution_names),
}


def apply(name: str) -> str:
    """Apply the patch ``name`` if it is switched on and the installed library needs it."""
    if name not in PATCHES:
        raise ValueError(f'unknown compat patch {name!r}; choose from {sorted(PATCHES)}')
    if name in STATUS:  # decided once: a second probe would see this plugin's own change
        return STATUS[name]
    patch = PATCHES[name]
    if not env_enabled(patch.env):
        status = 'disabled'
    elif patch.needed():
        patch.install()
        status = 'applied'
    else:
        status = 'not needed'
    if patch.otherwise is not None and (status == 'not needed'
                                        or status == 'disabled' and patch.otherwise_when_disabled):
        patch.otherwise()
    STATUS[name] = status
    return status
