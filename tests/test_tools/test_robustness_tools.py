"""The tools as a newcomer meets them (issue 13, items 1, 5, 11 and 12), on a few generated demo images."""
import argparse
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tools' / 'misc'))
from generate_demo_data import generate  # noqa: E402

DEMO_CONFIGS = sorted((ROOT / 'configs' / 'demo').glob('*.py'))
FPN = ROOT / 'configs' / 'demo' / 'fpn_crossformer-demo_shapes-128.py'
MASK_RCNN = ROOT / 'configs' / 'demo' / 'mask-rcnn_crossformer-demo_shapes-128.py'
NUM_VAL = 2

# Builds a config's model (fresh weights) and saves it as a checkpoint, in its own process (registries, scopes).
SAVE_MODEL = """
import sys, torch
from mmengine.config import Config
from mmvit_backbones.runtime import build_model_from_config
for config, out in zip(sys.argv[1::2], sys.argv[2::2]):
    model = build_model_from_config(Config.fromfile(config))
    model.init_weights()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, out)
"""


def load_tool(relative_path: str):
    spec = importlib.util.spec_from_file_location(Path(relative_path).stem, ROOT / relative_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(*args, env=None, check=True):
    environ = {**os.environ, 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1', **(env or {})}
    result = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=environ, capture_output=True,
                            text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope='module')
def demo_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo_data')
    generate(str(root), num_train=4, num_val=NUM_VAL, size=128, seed=1)
    return str(root) + '/'


def data_options(data_root: str, config: Path):
    options = [f'{loader}.dataset.data_root={data_root}'
               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    if 'mask-rcnn' in config.name:
        options += [f'{evaluator}.ann_file={data_root}annotations/instances_val.json'
                    for evaluator in ('val_evaluator', 'test_evaluator')]
    return options


@pytest.fixture(scope='module')
def demo_checkpoints(tmp_path_factory):
    """Untrained checkpoints of the Semantic FPN and the Mask R-CNN demo models."""
    root = tmp_path_factory.mktemp('checkpoints')
    paths = {FPN: root / 'fpn.pth', MASK_RCNN: root / 'mask-rcnn.pth'}
    run_tool('-c', SAVE_MODEL, *[str(v) for item in paths.items() for v in item])
    return paths


# -- item 1: tools/test.py refuses a checkpoint that does not fit -----------------------------------------


def test_test_tool_fails_on_a_checkpoint_of_another_model(demo_data, demo_checkpoints, tmp_path):
    result = run_tool(ROOT / 'tools' / 'test.py', FPN, demo_checkpoints[MASK_RCNN], '--work-dir', tmp_path,
                      '--cfg-options', *data_options(demo_data, FPN), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert 'does not fit EncoderDecoder' in output and 'missing keys' in output, output[-3000:]
    assert 'decode_head.conv_seg.weight' in output and 'load_strict=False' in output
    assert 'mIoU: ' not in output  # no metric line


def test_test_tool_loads_what_fits_when_asked(demo_data, demo_checkpoints, tmp_path):
    result = run_tool(ROOT / 'tools' / 'test.py', FPN, demo_checkpoints[MASK_RCNN], '--work-dir', tmp_path,
                      '--cfg-options', 'load_strict=False', *data_options(demo_data, FPN))
    output = result.stdout + result.stderr
    assert 'does not fit EncoderDecoder' in output and 'mIoU: ' in output


# -- item 11: --show-dir draws every image; logger interval; demo configs ------------------------------


def test_show_dir_draws_every_test_image(demo_data, demo_checkpoints, tmp_path):
    run_tool(ROOT / 'tools' / 'test.py', FPN, demo_checkpoints[FPN], '--work-dir', tmp_path, '--show-dir', 'vis',
             '--cfg-options', *data_options(demo_data, FPN))
    drawn = list((tmp_path / 'vis').rglob('*.png'))
    assert len(drawn) == NUM_VAL, drawn


@pytest.mark.parametrize('config', DEMO_CONFIGS, ids=lambda p: p.stem)
def test_demo_configs_support_show_dir_and_short_runs(config, tmp_path):
    test_tool = load_tool('tools/test.py')
    cfg = Config.fromfile(config)
    cfg.work_dir = str(tmp_path)
    test_tool.enable_visualization(cfg, 'vis')
    hook = cfg.default_hooks.visualization
    assert hook.draw is True and hook.get('interval') == 1, hook
    # A 10-iteration trial run shows its progress.
    assert cfg.default_hooks.logger.interval <= 5
    # Reproducible on CPU (item 12).
    assert cfg.randomness == dict(seed=0, deterministic=True) and cfg.torch_num_threads == 2


# -- item 11: --resume in an empty work dir ------------------------------------------------------------


def test_resume_in_an_empty_work_dir_warns_and_trains_from_scratch(tmp_path, monkeypatch):
    train_tool = load_tool('tools/train.py')
    messages = []
    monkeypatch.setattr(train_tool, 'print_log', lambda msg, **kwargs: messages.append((msg, kwargs)))
    cfg = Config(dict(work_dir=str(tmp_path), optim_wrapper=dict(type='OptimWrapper')))
    args = argparse.Namespace(resume='auto', amp=False, auto_scale_lr=False)
    train_tool.apply_train_options(cfg, args)
    assert cfg.resume is False
    assert len(messages) == 1 and 'no checkpoint to resume from' in messages[0][0]
    assert str(tmp_path) in messages[0][0] and messages[0][1]['level'] >= 30  # WARNING

    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_3.pth'))
    messages.clear()
    train_tool.apply_train_options(cfg, args)
    assert cfg.resume is True and messages == []


# -- item 11: the launch scripts find the environment `make setup` made --------------------------------


def fake_python(path: Path, name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/usr/bin/env bash\necho {name} "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize('script, args', [
    ('dist_train.sh', ['cfg.py', '2']), ('dist_test.sh', ['cfg.py', 'ckpt.pth', '2']),
    ('slurm_train.sh', ['part', 'job', 'cfg.py', 'wd']), ('slurm_test.sh', ['part', 'job', 'cfg.py', 'ckpt.pth'])])
def test_launch_scripts_use_the_venv_python(script, args, tmp_path):
    clone = tmp_path / 'clone'
    (clone / 'tools').mkdir(parents=True)
    shutil.copy(ROOT / 'tools' / script, clone / 'tools' / script)
    fake_python(clone / '.venv' / 'bin' / 'python', 'VENV_PYTHON')
    bin_dir = tmp_path / 'bin'
    fake_python(bin_dir / 'python', 'PATH_PYTHON')
    (bin_dir / 'srun').write_text('#!/usr/bin/env bash\nfor a in "$@"; do echo "$a"; done\n')
    (bin_dir / 'srun').chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if k != 'PYTHON'}
    environ['PATH'] = f'{bin_dir}:{environ["PATH"]}'
    out = subprocess.run(['bash', str(clone / 'tools' / script), *args], env=environ, capture_output=True,
                         text=True, check=True).stdout
    assert 'VENV_PYTHON' in out or str(clone / '.venv' / 'bin' / 'python') in out, out
    assert 'PATH_PYTHON' not in out
    # $PYTHON still wins.
    fake_python(bin_dir / 'mine', 'MY_PYTHON')
    out = subprocess.run(['bash', str(clone / 'tools' / script), *args], env=dict(environ, PYTHON='mine'),
                         capture_output=True, text=True, check=True).stdout
    assert 'MY_PYTHON' in out or '\nmine\n' in out, out


def test_readme_says_how_to_use_the_venv():
    readme = (ROOT / 'README.md').read_text()
    assert 'source .venv/bin/activate' in readme and '.venv/bin/python tools/train.py' in readme


# -- item 5: the converters check the family ------------------------------------------------------------


def tiny_state_dict(family: str):
    from mmvit_backbones.models.backbones import CrossFormer, SGFormer
    if family == 'CrossFormer':
        return CrossFormer(arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])).state_dict()
    return SGFormer(arch=dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 1], num_heads=[2, 2, 4, 8])).state_dict()


@pytest.mark.parametrize('converter, wrong, right', [
    ('sgformer2mmvit.py', 'CrossFormer', 'SGFormer'), ('crossformer2mmvit.py', 'SGFormer', 'CrossFormer')])
def test_converter_refuses_a_checkpoint_of_another_family(converter, wrong, right, tmp_path, capsys):
    tool = load_tool(f'tools/model_converters/{converter}')
    src, dst = tmp_path / 'released.pth', tmp_path / 'converted.pth'
    state_dict = tiny_state_dict(wrong)
    torch.save({'model': state_dict}, src)
    with pytest.raises(SystemExit) as info:
        tool.main([str(src), str(dst)])
    message = str(info.value.code)
    assert f'0 of {len(state_dict)} keys match {right}' in message
    assert f'this looks like a {wrong} file' in message and str(src) in message
    assert not dst.exists()
    # The right family still converts.
    torch.save({'model': tiny_state_dict(right)}, src)
    tool.main([str(src), str(dst)])
    assert dst.exists()


# -- item 12: the demo trains reproducibly on CPU ---------------------------------------------------------


def scalars(work_dir: Path):
    path = sorted(work_dir.glob('*/vis_data/scalars.json'))[-1]
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_demo_training_is_reproducible_whatever_the_thread_setting(demo_data, tmp_path):
    """Two short runs of a demo config, started with other OMP_NUM_THREADS, give identical losses and weights."""
    runs = []
    for threads in ('1', '2'):
        work_dir = tmp_path / f'threads{threads}'
        run_tool(ROOT / 'tools' / 'train.py', FPN, '--work-dir', work_dir, '--cfg-options',
                 *data_options(demo_data, FPN), 'train_cfg.max_iters=3', 'default_hooks.logger.interval=1',
                 'default_hooks.checkpoint.interval=3', env=dict(OMP_NUM_THREADS=threads))
        runs.append((scalars(work_dir), torch.load(work_dir / 'iter_3.pth', weights_only=False)['state_dict']))
    (log_a, weights_a), (log_b, weights_b) = runs
    losses_a = [r['loss'] for r in log_a if 'loss' in r]
    losses_b = [r['loss'] for r in log_b if 'loss' in r]
    assert len(losses_a) == 3 and losses_a == losses_b
    metrics_a = [r['mIoU'] for r in log_a if 'mIoU' in r]
    assert metrics_a == [r['mIoU'] for r in log_b if 'mIoU' in r]
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
