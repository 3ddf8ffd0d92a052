"""mmvit_backbones.compat: each patch is decided by what the installed libraries do, and can be turned off."""
import argparse
import importlib.util
import os
import subprocess
import sys

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

import mmvit_backbones  # noqa: F401
from mmvit_backbones import compat
from mmvit_backbones.checkpoint import load_trusted_local
from mmvit_backbones.models.layers import fused_attention_enabled

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fresh_import_status(**env):
    """``compat.STATUS`` after importing the package in a new interpreter with ``env`` set."""
    code = 'import mmvit_backbones, mmvit_backbones.compat as c; print(repr(c.STATUS))'
    environ = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''), **env)
    out = subprocess.run([sys.executable, '-c', code], env=environ, check=True, capture_output=True, text=True)
    return eval(out.stdout.strip().splitlines()[-1])


def test_every_patch_was_decided_and_is_documented():
    assert set(compat.STATUS) == set(compat.PATCHES)
    assert set(compat.STATUS.values()) <= {'applied', 'not needed', 'disabled'}
    for name, patch in compat.PATCHES.items():
        assert f'``{name}`` (``{patch.env}``)' in compat.__doc__
        assert patch.env in open(os.path.join(ROOT, 'README.md')).read()


def test_unknown_patch_name_is_rejected():
    with pytest.raises(ValueError, match='trusted_local_loader'):
        compat.apply('no_such_patch')


def test_trusted_loader_installed_exactly_when_mmengine_refuses_trusted_files(tmp_path):
    path = tmp_path / 'released.pth'
    torch.save({'args': argparse.Namespace(lr=1.0)}, path)
    ours = CheckpointLoader._get_checkpoint_loader(str(path)) is load_trusted_local
    assert ours == (compat.STATUS['trusted_local_loader'] == 'applied')
    # Either way a trusted local file with Python objects loads through mmengine.
    assert _load_checkpoint(str(path), map_location='cpu')['args'].lr == 1.0


def test_switches_turn_every_patch_off():
    env = {patch.env: '0' for patch in compat.PATCHES.values()}
    assert set(fresh_import_status(**env).values()) == {'disabled'}


def test_weights_only_switch_always_installs_the_trusted_loader():
    assert fresh_import_status(MMVIT_WEIGHTS_ONLY='1')['trusted_local_loader'] == 'applied'


def test_fused_attention_follows_torch_and_its_switch():
    assert fused_attention_enabled() == compat.sdpa_takes_scale()
    assert compat.STATUS['fused_attention'] == ('applied' if compat.sdpa_takes_scale() else 'not needed')
    code = ('import mmvit_backbones; from mmvit_backbones.models.layers import fused_attention_enabled; '
            'print(fused_attention_enabled())')
    environ = dict(os.environ, PYTHONPATH=ROOT, MMVIT_FUSED_ATTENTION='0')
    out = subprocess.run([sys.executable, '-c', code], env=environ, check=True, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == 'False'


def test_fork_distribution_names_let_mmengine_resolve_every_installed_scope():
    from mmengine.config import Config
    from mmengine.utils import is_installed

    for module, package in compat.scope_modules().items():
        if importlib.util.find_spec(module) is not None and module in ('mmdet', 'mmseg', 'mmpretrain'):
            assert is_installed(package), package
    # What failed on the fork before: a config inheriting from mmseg's own base configs.
    assert Config.fromstring("_base_ = ['mmseg::_base_/models/fpn_r50.py']", '.py').model.type == 'EncoderDecoder'
    fork = any(compat.fork_distribution(p) for p in compat.scope_modules().values())
    assert compat.STATUS['fork_distribution_names'] == ('applied' if fork else 'not needed')


def test_neither_stack_gives_a_clear_import_error():
    code = 'import sys; sys.modules["mmengine"] = None; import mmvit_backbones'  # mmengine not importable
    environ = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, '-c', code], env=environ, capture_output=True, text=True)
    assert out.returncode != 0
    assert "pip install 'mmvit-backbones[openmmlab]'" in out.stderr
    assert "pip install 'mmvit-backbones[onedl]'" in out.stderr
