"""Pale-T training step on CPU: activation bytes saved for backward and aten ops.

Two CPU proxies for the GPU's eager training step (no GPU needed):

* **saved bytes**: the unique storages autograd keeps for backward during the
  forward, counted with ``torch.autograd.graph.saved_tensors_hooks`` (parameters
  and buffers left out: they exist anyway). Peak training memory is the
  parameters, the optimiser state and these, plus the transient peak of backward.
* **ops**: aten ops dispatched by forward + backward (``count_ops`` of
  ``count_ops.py``; every non-view op is at least one kernel launch on CUDA).

Both in fp32 and under ``torch.autocast('cpu', dtype=torch.bfloat16)``, for one
stage-1 block and for the whole backbone. CPU autocast runs LayerNorm in its
input's dtype where CUDA autocast runs it in fp32 (fp32 output): by default
LayerNorm gets CUDA's policy here, so that the residual stream has the dtype it
has on the GPU (``--cpu-layer-norm`` keeps CPU's). The code measured is whatever
``import mmvit_backbones`` finds, so compare implementations by running it with
different ``PYTHONPATH`` (``git archive <commit> mmvit_backbones | tar -x -C DIR``):

    PYTHONPATH=DIR python docs/benchmarks/scripts/pale_step_budget.py --label base --json base.json
    python docs/benchmarks/scripts/pale_step_budget.py --inputs 4x224x224 1x256x384 2x256x384
"""
import argparse
import importlib.util
import inspect
import json
from pathlib import Path
from typing import Callable, Dict, Tuple

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent


def layer_norm_as_on_cuda() -> None:
    """Under CPU autocast, LayerNorm in fp32 with an fp32 output, as CUDA autocast runs it."""
    layer_norm = F.layer_norm

    def fp32_layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        if torch.is_autocast_enabled('cpu'):
            with torch.autocast('cpu', enabled=False):
                return layer_norm(input.float(), normalized_shape, weight, bias, eps)
        return layer_norm(input, normalized_shape, weight, bias, eps)
    F.layer_norm = fp32_layer_norm


def _count_ops():
    spec = importlib.util.spec_from_file_location('count_ops', HERE / 'count_ops.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.count_ops, module.kernel_ops


def saved_bytes(module: torch.nn.Module, forward: Callable[[], torch.Tensor]) -> Tuple[int, torch.Tensor]:
    """Bytes of the unique non-parameter storages saved for backward while ``forward()`` runs."""
    own = {t.untyped_storage().data_ptr() for t in list(module.parameters()) + list(module.buffers())}
    storages: Dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    return sum(storages.values()), out


def backbone_step(model: torch.nn.Module, x: torch.Tensor, bf16: bool) -> Callable[[], torch.Tensor]:
    def forward() -> torch.Tensor:
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            outs = model(x)
        return sum(o.float().sum() for o in outs)
    return forward


def block_step(x_shape: Tuple[int, int, int, int], bf16: bool):
    """A Pale-T stage-1 block (C = 64, 2 heads, pale 7) on a ``(B, 64, H, W)`` map, as its stage calls it."""
    from mmvit_backbones.models.backbones import pale_transformer as pale
    b, c, h, w = x_shape
    block = pale.PaleBlock(c, 2, 4., 0., dict(type='LN'), dict(type='BN'))
    if hasattr(pale, 'PaleLayouts'):
        layouts = pale.PaleLayouts.build((h, w), (7, 7))
    else:  # the code before issue 14
        layouts = pale.pale_layout((h, w), (7, 7))
    x = torch.randn(b, h * w, c, requires_grad=True)

    def forward() -> torch.Tensor:
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            # Blocks of this tree take (B, H, W, C) maps; before session 4's dyn branch, tokens.
            out = block(x.unflatten(1, (h, w)) if hasattr(block, 'pale_size') else x, layouts)
        return out.float().sum()
    return block, forward


def measure(module, forward, count_ops, kernel_ops) -> dict:
    module.train()
    for _ in range(2):  # warm-up (autocast caches, lazy layouts)
        module.zero_grad(set_to_none=True)
        forward().backward()
    module.zero_grad(set_to_none=True)
    nbytes, out = saved_bytes(module, forward)
    out.backward()
    module.zero_grad(set_to_none=True)

    def step() -> None:
        module.zero_grad(set_to_none=True)
        forward().backward()
    counts = count_ops(step)
    return dict(saved_MiB=nbytes / 2**20, ops=sum(counts.values()), kernels=kernel_ops(counts),
                casts=counts.get('_to_copy', 0), sdpa=sum(n for k, n in counts.items() if 'attention' in k))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--label', default='current')
    parser.add_argument('--inputs', nargs='*', default=['4x224x224', '1x256x384', '2x256x384'],
                        help='BxHxW images for the whole backbone')
    parser.add_argument('--blocks', nargs='*', default=['1x56x56', '1x64x96'],
                        help='BxHxW stage-1 maps for one block')
    parser.add_argument('--cpu-layer-norm', action='store_true', help="keep CPU autocast's LayerNorm policy")
    parser.add_argument('--json')
    args = parser.parse_args()
    if not args.cpu_layer_norm:
        layer_norm_as_on_cuda()
    import mmvit_backbones
    from mmvit_backbones.models.backbones.pale_transformer import PaleTransformer
    torch.manual_seed(0)
    count_ops, kernel_ops = _count_ops()
    rows = []
    print(f'{args.label}: {Path(inspect.getfile(mmvit_backbones)).parent}, torch {torch.__version__}')
    print('| label | what | precision | saved MiB | ops (kernels, casts, sdpa) |')
    print('|---|---|---|---|---|')
    cases = []
    for spec in args.blocks:
        b, h, w = map(int, spec.split('x'))
        cases.append((f'block 64ch {spec}', lambda bf16, s=(b, 64, h, w): block_step(s, bf16)))
    model = PaleTransformer(arch='t', drop_path_rate=0.)
    for spec in args.inputs:
        b, h, w = map(int, spec.split('x'))
        x = torch.randn(b, 3, h, w)
        cases.append((f'Pale-T {b}x3x{h}x{w}', lambda bf16, x=x: (model, backbone_step(model, x, bf16))))
    for what, make in cases:
        for bf16 in (False, True):
            module, forward = make(bf16)
            row = dict(label=args.label, what=what, precision='bf16' if bf16 else 'fp32',
                       **measure(module, forward, count_ops, kernel_ops))
            rows.append(row)
            print(f"| {row['label']} | {what} | {row['precision']} | {row['saved_MiB']:.2f} | {row['ops']} "
                  f"({row['kernels']}, {row['casts']}, {row['sdpa']}) |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(torch=torch.__version__, rows=rows), indent=1))


if __name__ == '__main__':
    main()
