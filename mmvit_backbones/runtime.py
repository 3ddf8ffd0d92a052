"""Runner set-up shared by ``tools/train.py`` and ``tools/test.py``."""
import os
import os.path as osp
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config


def prepare_cpu_distributed(cfg: Config, launcher: str) -> None:
    """Let a distributed launch run on CPU-only machines (gloo).

    mmengine 0.10.7 always calls ``torch.cuda.set_device`` in its PyTorch
    launcher and hands ``device_ids=[LOCAL_RANK]`` to DDP; both fail without a
    GPU. Initialising the gloo process group here makes the runner skip its own
    initialisation, and ``device_ids=None`` is what DDP expects for CPU modules.
    Nothing changes when CUDA is available or the launch is not distributed.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ValueError(f'CPU-only distributed runs support --launcher pytorch, got {launcher!r}')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper


def resolve_work_dir(cfg: Config, config_path: str, work_dir: Optional[str]) -> str:
    """CLI ``--work-dir`` > the config's ``work_dir`` > ``./work_dirs/<config name>``."""
    if work_dir is not None:
        return work_dir
    if cfg.get('work_dir') is not None:
        return cfg.work_dir
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def set_local_rank_env(local_rank: int) -> None:
    """``torch.distributed.launch`` passes ``--local-rank``; mmengine reads the env var."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)
