"""Backbone throughput and peak memory: the building blocks of
``tools/analysis_tools/benchmark_backbone.py`` (see its docstring), shared with the
device scripts in ``docs/benchmarks/scripts/``."""
import datetime
import functools
import platform
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

GEOMETRIES = {'cls': dict(batch_size=64, size=(224, 224)), 'dense': dict(batch_size=2, size=(800, 1216))}
PRECISIONS = ('fp32', 'bf16')
MODES = ('infer', 'train')


def build_model(spec: str, geometry: str, size: Tuple[int, int], options: Optional[dict] = None) -> nn.Module:
    """The backbone (or timm peer) that ``spec`` names; see the module docstring."""
    options = dict(options or {})
    if spec.startswith('timm:'):
        import timm
        name = spec[len('timm:'):]
        if geometry == 'cls':
            return timm.create_model(name, pretrained=False, **options)
        return timm.create_model(name, pretrained=False, features_only=True, img_size=size, **options)

    from mmengine.registry import MODELS

    import mmvit_backbones  # noqa: F401  (registers the backbones)
    if spec.endswith('.py'):
        from mmengine.config import Config

        from mmvit_backbones.runtime import build_model_from_config
        cfg = Config.fromfile(spec)
        model_cfg = cfg.model.get('backbone', cfg.model).copy()
        model_cfg.update(options)
        return build_model_from_config(cfg, model_cfg)
    if ':' not in spec:
        raise ValueError(f'cannot read model {spec!r}: use Type:arch, a config .py file or timm:NAME')
    model_type, arch = spec.split(':', 1)
    return MODELS.build(dict(dict(type=model_type, arch=arch), **options))


def _outputs(result) -> List[torch.Tensor]:
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, dict):
        return list(result.values())
    return list(result)


def make_step(model: nn.Module, mode: str, precision: str, device: torch.device,
              zero_grad: bool = True) -> Callable[[torch.Tensor], None]:
    """One iteration (``x -> None``) of ``mode`` at ``precision``.

    ``zero_grad=False`` leaves the gradients in place (a CUDA graph captures
    the backward that writes them and replays it; it must not free them).
    """
    # Autocast's weight-cast cache would keep casts made during a graph capture alive outside it.
    autocast = functools.partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16,
                                 enabled=precision == 'bf16', cache_enabled=zero_grad)

    if mode == 'infer':

        def step(x: torch.Tensor) -> None:
            with torch.inference_mode(), autocast():
                model(x)

        return step

    def step(x: torch.Tensor) -> None:  # noqa: F811 (one of two step functions is returned)
        with autocast():
            loss = sum(out.float().mean() for out in _outputs(model(x)))
        loss.backward()
        if zero_grad:
            model.zero_grad(set_to_none=True)

    return step


def capture_step(model: nn.Module, mode: str, precision: str, device: torch.device,
                 example: torch.Tensor) -> Callable[[torch.Tensor], None]:
    """The step of :func:`make_step` captured in a CUDA graph: ``x -> None`` copies ``x`` in and replays.

    Warm-up runs on a side stream first, as CUDA graph capture requires.
    """
    step = make_step(model, mode, precision, device, zero_grad=False)
    static_input = example.clone()
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(3):
            step(static_input)
    torch.cuda.current_stream(device).wait_stream(stream)
    model.zero_grad(set_to_none=True)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(static_input)

    def replay(x: torch.Tensor) -> None:
        static_input.copy_(x)
        graph.replay()

    return replay


class Timer:
    """Elapsed seconds of a region: CUDA events on a GPU, a host clock elsewhere."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == 'cuda'

    def __enter__(self) -> 'Timer':
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            self.end.record()
            torch.cuda.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1e3
        else:
            self.seconds = time.perf_counter() - self.t0


def measure(model: nn.Module, mode: str, precision: str, batch_size: int, size: Tuple[int, int],
            device: torch.device, warmup: int, iters: int, repeats: int, channels_last: bool = False,
            cuda_graph: bool = False, profile_path: Optional[str] = None) -> Dict:
    """Time one (mode, precision) of ``model``; returns a JSON-ready dict."""
    model.train(mode == 'train')
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    # Two input sets in turn, so that a repeated buffer cannot sit in the cache.
    inputs = [torch.randn(batch_size, 3, *size, device=device).contiguous(memory_format=memory_format)
              for _ in range(2)]
    cuda = device.type == 'cuda'
    start = time.perf_counter()
    if cuda_graph:
        if not cuda:
            raise ValueError('--cuda-graph needs a CUDA device')
        step = capture_step(model, mode, precision, device, inputs[0])
    else:
        step = make_step(model, mode, precision, device)
    for i in range(warmup):
        step(inputs[i % 2])
    if cuda:
        torch.cuda.synchronize()
    warmup_seconds = time.perf_counter() - start

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    seconds = []
    for _ in range(repeats):
        with Timer(device) as timer:
            for i in range(iters):
                step(inputs[i % 2])
        seconds.append(timer.seconds)
    median = statistics.median(seconds)
    result = dict(
        mode=mode,
        precision=precision,
        batch_size=batch_size,
        size=list(size),
        warmup_seconds=round(warmup_seconds, 3),
        run_seconds=[round(s, 6) for s in seconds],
        images_per_s=round(batch_size * iters / median, 2),
        ms_per_iter=round(1e3 * median / iters, 3),
        spread=round((max(seconds) - min(seconds)) / median, 4),
        peak_memory_gib=round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
        if cuda and not cuda_graph else None)

    if profile_path is not None:
        from torch.profiler import ProfilerActivity, profile
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:
            for i in range(3):
                step(inputs[i % 2])
            if cuda:
                torch.cuda.synchronize()
        sort_by = 'self_cuda_time_total' if cuda else 'self_cpu_time_total'
        with open(profile_path, 'w') as f:
            f.write(prof.key_averages().table(sort_by=sort_by, row_limit=40, max_name_column_width=90))
    return result


def environment(device: torch.device) -> Dict:
    """What the numbers were measured on."""
    env = dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        python=platform.python_version(),
        device=str(device),
        device_name=torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor(),
        tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
        tf32_cudnn=torch.backends.cudnn.allow_tf32)
    try:
        import timm
        env['timm'] = timm.__version__
    except ImportError:
        pass
    return env


def reference_ratio(reference: Dict, model: str, geometry: str, entry: Dict) -> Optional[Dict[str, float]]:
    """Measured over published, for throughput (higher is better) and memory (lower is better)."""
    figures = reference.get(model, {}).get(geometry, {})
    key = f"{entry['mode']}_{entry['precision']}"
    ratios = {}
    if key in figures:
        ratios['throughput'] = round(entry['images_per_s'] / figures[key], 3)
    if f'{key}_ms' in figures:
        ratios['time'] = round(entry['ms_per_iter'] / figures[f'{key}_ms'], 3)
    if f'{key}_peak_gib' in figures and entry.get('peak_memory_gib') is not None:
        ratios['peak_memory'] = round(entry['peak_memory_gib'] / figures[f'{key}_peak_gib'], 3)
    return ratios or None


def format_table(results: Sequence[Dict]) -> str:
    """A Markdown table of every measurement."""
    lines = ['| model | geometry | mode | precision | img/s | ms/iter | peak GiB | vs reference |',
             '|---|---|---|---|---|---|---|---|']
    for model in results:
        for entry in model['measurements']:
            if 'error' in entry:
                lines.append(f"| {model['name']} | {entry['geometry']} | {entry['mode']} | {entry['precision']} "
                             f"| {entry['error']} | | | |")
                continue
            ratio = entry.get('reference_ratio') or {}
            ratio_text = ', '.join(f'{k} {v:.2f}x' for k, v in ratio.items())
            peak = '' if entry['peak_memory_gib'] is None else f"{entry['peak_memory_gib']:.2f}"
            lines.append(f"| {model['name']} | {entry['geometry']} | {entry['mode']} | {entry['precision']} "
                         f"| {entry['images_per_s']:.1f} | {entry['ms_per_iter']:.2f} | {peak} | {ratio_text} |")
    return '\n'.join(lines)


def parse_size(values: Optional[Sequence[int]]) -> Optional[Tuple[int, int]]:
    if values is None:
        return None
    if len(values) == 1:
        return (values[0], values[0])
    if len(values) != 2:
        raise ValueError(f'--size takes H or H W, got {values}')
    return tuple(values)

def parse_options(pairs: Sequence[str]) -> Dict:
    import ast
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep:
            raise ValueError(f'--options entries are KEY=VALUE, got {pair!r}')
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return options
