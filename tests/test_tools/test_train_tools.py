"""tools/train.py, tools/test.py and tools/dist_train.sh end to end on a few demo images."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmvit_backbones.stack import installed_stack

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tools' / 'misc'))
from generate_demo_data import generate  # noqa: E402

# A deterministic Semantic FPN run: no stochastic depth, no dropout, fixed seed.
CONFIG = """
_base_ = [{base!r}]
data_root = {data_root!r}
model = dict(
    backbone=dict(_delete_=True, type='CrossFormer', arch=dict(embed_dims=16, depths=[1, 1, 1, 1],
                  num_heads=[1, 2, 4, 8]), drop_path_rate=0.0),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=16),
    decode_head=dict(in_channels=[16] * 4, channels=16, dropout_ratio=0.0),
    data_preprocessor=dict(size=(64, 64)))
train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root, pipeline=[
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')]))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=6, val_interval=100)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=6)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=3, max_keep_ckpts=3))
randomness = dict(seed=0, deterministic=True)
"""


@pytest.fixture(scope='module')
def demo_config(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    generate(str(root / 'data'), num_train=8, num_val=2, size=64, seed=1)
    config = root / 'fpn_tiny.py'
    config.write_text(CONFIG.format(base=str(ROOT / 'configs' / 'demo' / '_base_' / 'fpn_demo.py'),
                                    data_root=str(root / 'data') + '/'))
    return config


def run_tool(*args, env=None):
    environ = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1', **(env or {}))
    result = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=environ, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def losses(work_dir: Path):
    """{iteration: loss} from the scalars mmengine logged."""
    scalars = sorted(work_dir.glob('*/vis_data/scalars.json'))[-1]
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    return {r['iter']: r['loss'] for r in records if 'loss' in r}


@pytest.mark.xfail(installed_stack() == 'onedl', strict=True,
                   reason="onedl-mmengine's resume skips the sampler without loading the skipped batches, so "
                   "RandomFlip's random stream is not replayed and later batches are flipped differently")
def test_resume_continues_with_the_same_losses(demo_config, tmp_path):
    full, part = tmp_path / 'full', tmp_path / 'part'
    run_tool(ROOT / 'tools' / 'train.py', demo_config, '--work-dir', full)
    # Stop after the first checkpoint: an interrupted run.
    run_tool(ROOT / 'tools' / 'train.py', demo_config, '--work-dir', part, '--cfg-options', 'train_cfg.max_iters=3')
    assert (part / 'iter_3.pth').exists()
    # --resume without a path takes the latest checkpoint of the work dir; the loop's end comes from the config.
    resumed = run_tool(ROOT / 'tools' / 'train.py', demo_config, '--work-dir', part, '--resume')
    assert 'resumed epoch: 0, iter: 3' in resumed.stdout + resumed.stderr
    expected, got = losses(full), losses(part)
    assert sorted(got) == [4, 5, 6] and sorted(expected) == [1, 2, 3, 4, 5, 6]
    for it in (4, 5, 6):
        assert got[it] == pytest.approx(expected[it], rel=1e-5, abs=1e-6), (it, got, expected)
    assert (part / 'iter_6.pth').exists()


def test_test_tool_evaluates_and_dumps(demo_config, tmp_path):
    run_tool(ROOT / 'tools' / 'train.py', demo_config, '--work-dir', tmp_path, '--cfg-options', 'train_cfg.max_iters=3')
    out = tmp_path / 'preds.pkl'
    result = run_tool(ROOT / 'tools' / 'test.py', demo_config, tmp_path / 'iter_3.pth', '--work-dir', tmp_path,
                      '--out', out)
    assert 'mIoU' in result.stdout + result.stderr
    assert out.exists() and out.stat().st_size > 0


def test_dist_train_runs_two_cpu_processes(demo_config, tmp_path):
    work_dir = tmp_path / 'dist'
    # One retry on another port: gloo's rendezvous on a busy 2-core machine has aborted once at start-up
    # (SIGABRT in rank 0 before training); the run must still complete in full to pass.
    for port in ('29517', '29541'):
        environ = dict(os.environ, PYTHON=sys.executable, PORT=port, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
        result = subprocess.run(['bash', str(ROOT / 'tools' / 'dist_train.sh'), str(demo_config), '2',
                                 '--work-dir', str(work_dir)], cwd=ROOT, env=environ, capture_output=True,
                                text=True, timeout=600)
        if result.returncode == 0:
            break
    log = result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0, log
    assert (work_dir / 'iter_6.pth').exists(), log
    run_log = sorted(work_dir.glob('*/*.log'))[-1].read_text()
    assert 'Distributed training: True' in run_log and 'GPU number: 2' in run_log  # mmengine's name for world size
    assert sorted(losses(work_dir)) == [1, 2, 3, 4, 5, 6]
