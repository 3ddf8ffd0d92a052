"""Runner set-up shared by ``tools/train.py`` and ``tools/test.py``."""
import argparse
import os
import os.path as osp
from typing import Callable, Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.registry import MODELS, RUNNERS, DefaultScope, init_default_scope
from mmengine.runner import Runner
from mmengine.utils import import_modules_from_strings
from torch import nn

from .checkpoint import extract_state_dict, load_state_dict_loudly, read_checkpoint


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


def end_distributed() -> None:
    """Destroy the default process group, if any, before the process exits.

    mmengine leaves it to the interpreter's teardown, where its backend's
    threads can be torn down in any order: a gloo rank of a CPU run has
    aborted there (SIGABRT, "terminate called without an active exception")
    after training had finished, failing the whole launch.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


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


#: Config key: the number of CPU threads torch uses (the demo configs set it, for reproducible runs).
NUM_THREADS_KEY = 'torch_num_threads'


def set_cpu_threads(cfg: Config) -> None:
    """Apply the config's ``torch_num_threads``, if it has one.

    CPU float sums are split over threads, so another thread count gives
    other rounding: a run is reproducible only with the count fixed (it
    overrides ``OMP_NUM_THREADS``).
    """
    num_threads = cfg.get(NUM_THREADS_KEY)
    if num_threads is None:
        return
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f'{NUM_THREADS_KEY} must be a positive int, got {num_threads!r}')
    torch.set_num_threads(num_threads)


def build_runner(args: argparse.Namespace, configure: Optional[Callable[[Config], None]] = None) -> Runner:
    """Load a config from the command line of a tool and build its runner.

    The steps ``tools/train.py`` and ``tools/test.py`` share, in order: set
    ``LOCAL_RANK`` from ``--local-rank``, load the config, record the launcher,
    apply ``--cfg-options``, resolve the work dir (see :func:`resolve_work_dir`),
    let the tool adapt the config, fix the CPU thread count if the config asks
    (see :func:`set_cpu_threads`), prepare a CPU-only distributed launch (see
    :func:`prepare_cpu_distributed`) and build the runner: the config's
    ``runner_type`` through the ``RUNNERS`` registry, else mmengine's
    :class:`~mmengine.runner.Runner`.

    Args:
        args (argparse.Namespace): Parsed arguments with ``config`` (path),
            ``cfg_options`` (dict or None), ``work_dir`` (str or None),
            ``launcher`` (str) and ``local_rank`` (int).
        configure (Callable[[Config], None], optional): Applies the tool's own
            options to the loaded config in place (e.g. ``--amp``, ``--resume``,
            the checkpoint to test). It sees the resolved ``cfg.work_dir`` and
            runs before the runner is built. Defaults to None.

    Returns:
        Runner: The runner, not yet started.
    """
    set_local_rank_env(args.local_rank)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = resolve_work_dir(cfg, args.config, args.work_dir)
    if configure is not None:
        configure(cfg)
    set_cpu_threads(cfg)
    prepare_cpu_distributed(cfg, args.launcher)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def build_model_from_config(cfg: Config, model_cfg: Optional[dict] = None) -> nn.Module:
    """Build ``model_cfg`` (default ``cfg.model``) as mmengine's Runner would.

    The config's ``custom_imports`` are imported and its ``default_scope``
    (mmdet, mmseg, mmpretrain) decides which library's registry builds it.

    Args:
        cfg (Config): A loaded config.
        model_cfg (dict, optional): What to build, e.g. ``cfg.model.backbone``.
            Defaults to ``cfg.model``.

    Returns:
        nn.Module: The built model, not initialised.
    """
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    scope = cfg.get('default_scope')
    if scope is not None:
        init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg.model if model_cfg is None else model_cfg)


def load_checkpoint_loudly(runner: Runner, filename: str, strict: bool = True,
                           opt_out: str = 'Set strict=False to load what fits anyway.') -> dict:
    """Load a checkpoint into the runner's model, failing on any key that does not fit.

    What mmengine's ``load_from`` does, with :func:`load_state_dict_loudly`
    instead of its ``strict=False`` load that only prints a note: the
    ``after_load_checkpoint`` hooks run first (the EMA hook loads its averaged
    model there), then the weights go into the model inside any DDP wrapper or
    test-time augmentation model.

    Args:
        runner (Runner): A built runner.
        filename (str): The checkpoint (local path or any scheme mmengine reads).
        strict (bool): Raise on missing, unexpected or mis-shaped keys; with
            False they are logged as a warning and what fits is loaded.
        opt_out (str): How the user turns ``strict`` off, for the error message.

    Returns:
        dict: The key report of :func:`load_state_dict_loudly`.
    """
    checkpoint = read_checkpoint(filename)
    runner.call_hook('after_load_checkpoint', checkpoint=checkpoint)
    model = runner.model
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return load_state_dict_loudly(model, extract_state_dict(checkpoint), strict=strict, source=filename,
                                  opt_out=opt_out)


class LoudCheckpointHook(Hook):
    """Loads a checkpoint with :func:`load_checkpoint_loudly` when the run starts.

    Register it with priority ``'LOWEST'``: its ``before_run`` then comes after
    every other hook's (the EMA hook builds its averaged model there), where
    mmengine itself would load ``load_from``.
    """

    def __init__(self, filename: str, strict: bool = True,
                 opt_out: str = 'Set strict=False to load what fits anyway.') -> None:
        self.filename = filename
        self.strict = strict
        self.opt_out = opt_out

    def before_run(self, runner: Runner) -> None:
        load_checkpoint_loudly(runner, self.filename, strict=self.strict, opt_out=self.opt_out)


def enable_amp(cfg: Config, dtype: str = 'bfloat16') -> None:
    """Switch ``cfg``'s ``OptimWrapper`` to mmengine's ``AmpOptimWrapper`` (what ``tools/train.py --amp`` does)."""
    optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if optim_wrapper == 'AmpOptimWrapper':
        return
    if optim_wrapper != 'OptimWrapper':
        raise ValueError(f'--amp needs optim_wrapper type OptimWrapper, got {optim_wrapper!r}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.dtype = dtype
    cfg.optim_wrapper.loss_scale = 'dynamic'
