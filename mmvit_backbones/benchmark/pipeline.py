"""Training speed of whole configs in mmengine's loop, as users train.

:func:`benchmark_configs` trains each config for ``warmup + iters`` iterations
in its own process (a fresh CUDA context, allocator and compile cache per
config) and reads what mmengine logs per iteration: ``time`` (from the end of
one iteration to the end of the next, data loading included) and
``data_time`` (waiting for the batch), as :class:`~mmengine.hooks.IterTimerHook`
writes them to the message hub. ``tools/analysis_tools/benchmark_pipeline.py``
is its command line.
"""
import argparse
import datetime
import multiprocessing
import os.path as osp
import platform
import statistics
import tempfile
import traceback
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.hooks import Hook

# After IterTimerHook (NORMAL, 50), which writes the iteration's time, and before LoggerHook
# (BELOW_NORMAL, 60), whose log processor resets CUDA's peak-memory statistics.
RECORDER_PRIORITY = 55


class IterationRecorder(Hook):
    """Keeps mmengine's per-iteration ``time`` and ``data_time``, the peak
    memory and the shapes of the batches the backbone saw."""

    def __init__(self) -> None:
        self.times: List[float] = []
        self.data_times: List[float] = []
        self.max_memory: List[int] = []
        self.input_shapes: List[str] = []
        self._handle = None

    def before_train(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        backbone = getattr(model, 'backbone', None)
        if backbone is not None:
            self._handle = backbone.register_forward_pre_hook(self._record_shape)

    def _record_shape(self, module, args) -> None:
        if args and isinstance(args[0], torch.Tensor):
            self.input_shapes.append('x'.join(str(s) for s in args[0].shape))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        hub = runner.message_hub
        self.times.append(float(hub.get_scalar('train/time').current()))
        self.data_times.append(float(hub.get_scalar('train/data_time').current()))
        if torch.cuda.is_available():
            self.max_memory.append(torch.cuda.max_memory_allocated())

    def after_train(self, runner) -> None:
        if self._handle is not None:
            self._handle.remove()


def prepare_config(cfg: Config, max_iters: int) -> None:
    """Train ``max_iters`` iterations and nothing else: no validation, no checkpoints."""
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters + 1)
    for key in ('val_cfg', 'val_dataloader', 'val_evaluator', 'test_cfg', 'test_dataloader', 'test_evaluator'):
        cfg[key] = None
    cfg.setdefault('default_hooks', {})['checkpoint'] = None
    cfg.setdefault('log_processor', {})['by_epoch'] = False
    cfg.resume = False
    cfg.load_from = None


def summarize(values: Sequence[float]) -> Dict[str, float]:
    return dict(mean=round(statistics.fmean(values), 5), median=round(statistics.median(values), 5),
                min=round(min(values), 5), max=round(max(values), 5))


def time_config(config: str, iters: int, warmup: int = 10, amp: bool = False, amp_dtype: str = 'bfloat16',
                cfg_options: Optional[dict] = None, work_dir: Optional[str] = None) -> Dict:
    """Train ``config`` for ``warmup + iters`` iterations here; time the last ``iters``.

    Returns a JSON-ready dict: mean / median / min / max of mmengine's ``time``
    and ``data_time`` over the timed iterations (seconds), every timed value,
    the peak memory (MiB, CUDA only), the backbone's input shapes with their
    counts and the device.
    """
    from mmvit_backbones.runtime import build_runner, enable_amp

    if iters < 1 or warmup < 0:
        raise ValueError(f'iters must be >= 1 and warmup >= 0, got iters={iters}, warmup={warmup}')

    def configure(cfg: Config) -> None:
        prepare_config(cfg, warmup + iters)
        if amp:
            enable_amp(cfg, amp_dtype)

    args = argparse.Namespace(config=config, cfg_options=cfg_options, launcher='none', local_rank=0,
                              work_dir=work_dir or tempfile.mkdtemp(prefix='benchmark_pipeline_'))
    runner = build_runner(args, configure)
    recorder = IterationRecorder()
    runner.register_hook(recorder, priority=RECORDER_PRIORITY)
    runner.train()

    if len(recorder.times) != warmup + iters:
        raise RuntimeError(f'{config}: expected {warmup + iters} iterations, recorded {len(recorder.times)}')
    times, data_times = recorder.times[warmup:], recorder.data_times[warmup:]
    cuda = torch.cuda.is_available()
    return dict(
        time=summarize(times),
        data_time=summarize(data_times),
        max_memory_mib=round(max(recorder.max_memory) / 2**20) if cuda else None,
        input_shapes=dict(Counter(recorder.input_shapes[warmup:])),
        iter_times=[round(t, 5) for t in times],
        iter_data_times=[round(t, 5) for t in data_times],
        device=torch.cuda.get_device_name() if cuda else f'cpu ({platform.processor() or platform.machine()})',
        amp=amp_dtype if amp else None)


def _time_config_worker(queue, kwargs: Dict) -> None:
    try:
        queue.put(dict(status='ok', **time_config(**kwargs)))
    except BaseException as error:  # reported to the parent, which goes on with the next config
        queue.put(dict(status='error', error=f'{type(error).__name__}: {error}',
                       traceback=traceback.format_exc()[-4000:]))


def time_config_in_subprocess(**kwargs) -> Dict:
    """:func:`time_config` in a fresh (spawned) Python process; errors and crashes come back as entries."""
    context = multiprocessing.get_context('spawn')
    queue = context.Queue()
    process = context.Process(target=_time_config_worker, args=(queue, kwargs))
    process.start()
    result = None
    try:
        while result is None and (process.is_alive() or not queue.empty()):
            try:
                result = queue.get(timeout=1.0)
            except Exception:  # queue.Empty: keep waiting while the child lives
                continue
    finally:  # e.g. SystemExit from a SIGTERM: do not leave a training process on the GPU
        if process.is_alive() and result is None:
            process.terminate()
    process.join()
    if result is None:
        result = dict(status='error', error=f'the benchmark process exited with code {process.exitcode}')
    return result


def environment() -> Dict:
    """Software versions and the date; the device name comes with each config's result."""
    env = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
               python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda)
    for name in ('mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain'):
        try:
            env[name] = __import__(name).__version__
        except ImportError:
            env[name] = None
    return env


def benchmark_configs(configs: Sequence[str], iters: int, warmup: int = 10, amp: bool = False,
                      amp_dtype: str = 'bfloat16', cfg_options: Optional[dict] = None,
                      peer: Optional[str] = None, work_dir: Optional[str] = None,
                      isolate: bool = True, progress: Optional[Callable[[Dict], None]] = None) -> Dict:
    """Time each of ``configs`` (and ``peer``, first, if it is not among them) one after another.

    Each entry gets ``ratio_to_peer``: its mean s/iter over the peer's.
    ``isolate=False`` runs them in this process (one CUDA context for all).
    ``progress`` is called with the report so far after each config.
    """
    configs = list(configs)
    if peer is not None and peer not in configs:
        configs.insert(0, peer)
    work_dir = work_dir or tempfile.mkdtemp(prefix='benchmark_pipeline_')
    env = environment()
    settings = dict(iters=iters, warmup=warmup, amp=amp_dtype if amp else None, peer=peer,
                    cfg_options=dict(cfg_options or {}))
    results: List[Dict] = []
    report = dict(environment=env, settings=settings, results=results)
    for index, config in enumerate(configs):
        kwargs = dict(config=config, iters=iters, warmup=warmup, amp=amp, amp_dtype=amp_dtype,
                      cfg_options=dict(cfg_options or {}),
                      work_dir=osp.join(work_dir, f'{index}_{osp.splitext(osp.basename(config))[0]}'))
        if isolate:
            result = time_config_in_subprocess(**kwargs)
        else:
            result = dict(status='ok', **time_config(**kwargs))
        results.append(dict(config=config, name=osp.splitext(osp.basename(config))[0], **result))
        peer_entry = next((r for r in results if r['config'] == peer and r['status'] == 'ok'), None)
        for entry in results:
            if peer_entry is not None and entry['status'] == 'ok':
                entry['ratio_to_peer'] = round(entry['time']['mean'] / peer_entry['time']['mean'], 4)
        report = dict(environment=env, settings=settings, results=results)
        if progress is not None:
            progress(report)
    return report


def format_table(report: Dict) -> str:
    """A Markdown table of a :func:`benchmark_configs` report."""
    lines = ['| config | s/iter mean | median | data_time | / peer | max MiB | input shapes |',
             '|---|---|---|---|---|---|---|']
    for entry in report['results']:
        if entry['status'] != 'ok':
            lines.append(f"| {entry['name']} | {entry['error'][:120]} | | | | | |")
            continue
        ratio = entry.get('ratio_to_peer')
        lines.append(f"| {entry['name']} | {entry['time']['mean']:.4f} | {entry['time']['median']:.4f} "
                     f"| {entry['data_time']['mean']:.4f} | {'' if ratio is None else f'{ratio:.2f}'} "
                     f"| {entry['max_memory_mib'] or ''} | "
                     f"{', '.join(f'{s} ({n})' for s, n in entry['input_shapes'].items())} |")
    return '\n'.join(lines)
