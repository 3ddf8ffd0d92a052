"""mmvit_backbones.runtime.build_runner: the set-up that tools/train.py and tools/test.py share."""
import argparse
import os

import torch.distributed as dist
from mmengine.registry import RUNNERS

from mmvit_backbones.runtime import build_runner, end_distributed


@RUNNERS.register_module(force=True)
class RecordingRunner:
    """Builds nothing: keeps the config it was built from."""

    @classmethod
    def from_cfg(cls, cfg):
        runner = cls()
        runner.cfg = cfg
        return runner


def command_line(config, **overrides) -> argparse.Namespace:
    args = dict(config=str(config), cfg_options=None, work_dir=None, launcher='none', local_rank=0)
    args.update(overrides)
    return argparse.Namespace(**args)


def test_build_runner_applies_the_command_line_before_the_tool_options(tmp_path, monkeypatch):
    config = tmp_path / 'tiny_model.py'
    config.write_text("runner_type = 'RecordingRunner'\nmodel = dict(depth=1)\n")
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.delenv('LOCAL_RANK')  # restored after the test
    seen = {}

    def configure(cfg):
        seen.update(work_dir=cfg.work_dir, depth=cfg.model.depth, launcher=cfg.launcher)
        cfg.load_from = 'model.pth'

    runner = build_runner(command_line(config, cfg_options={'model.depth': 2}, local_rank=3), configure)
    assert isinstance(runner, RecordingRunner)
    # --cfg-options are merged and the work dir resolved before the tool's own options run.
    assert seen == dict(work_dir='./work_dirs/tiny_model', depth=2, launcher='none')
    assert runner.cfg.load_from == 'model.pth'
    assert os.environ['LOCAL_RANK'] == '3'

    # The work dir: --work-dir, else the config's (here set through --cfg-options), else from the config name.
    work_dir = str(tmp_path / 'out')
    assert build_runner(command_line(config, work_dir=work_dir)).cfg.work_dir == work_dir
    runner = build_runner(command_line(config, cfg_options={'work_dir': work_dir}))
    assert runner.cfg.work_dir == work_dir and runner.cfg.model.depth == 1 and 'load_from' not in runner.cfg


def test_end_distributed_destroys_the_process_group(tmp_path):
    end_distributed()  # nothing to end: no error
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "rendezvous"}', rank=0, world_size=1)
    assert dist.is_initialized()
    end_distributed()
    assert not dist.is_initialized()
