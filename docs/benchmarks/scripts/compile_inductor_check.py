"""One-off check of ``compile=dict(backend='inductor')`` (per-block compile, dynamic sizes) on CPU.

For tiny PaleTransformer / CrossFormer / CrossFormerPP / SGFormer models: a compiled model
and an eager twin with the same weights run forward + backward (train mode) at
two input sizes; outputs and parameter gradients must agree within fp32
tolerance, and the second size must compile no new graph. Prints the compile
seconds (first step minus a warm step), graph counts and the largest
differences; exits non-zero on a failure.

    python docs/benchmarks/scripts/compile_inductor_check.py [--models pale crossformer crossformerpp sgformer]
    # on a GPU machine the same check with CUDA kernels:
    python docs/benchmarks/scripts/compile_inductor_check.py --device cuda
    # inductor options, e.g. without its channels-last layout optimisation:
    python docs/benchmarks/scripts/compile_inductor_check.py --models pale --options layout_optimization=False

Inductor generates C++ (CPU) or Triton (CUDA) code per graph: tens of seconds
per graph on a 2-core CPU, so this is a script, not a CI test.

State (session 4, CPU, torch 2.14.1; causes in docs/benchmarks/README.md,
"Dynamic sizes and inductor"):
* crossformer: passes (8 graphs, ~150 s of compiling on 2 shared cores, none at
  the second size; outputs 1.7e-6, gradients 1.1e-6 from eager) since the
  backend compiles with ``backed_size_oblivious`` off (``layers/compile.py``).
* pale, sgformer: inductor fails on the forward, ``cannot determine truth value
  of Relational`` (it orders a view output's symbolic strides without the shape
  environment, ``torch/_inductor/graph.py`` ``run_node``). With
  ``--options layout_optimization=False`` a Pale block compiles and matches
  eager, but inductor's convolution backward then specialises the map size
  (``kernel/conv.py``, ``guard_int_seq`` of the input-gradient strides), so
  every new size compiles again. SG-Former with that option: 7 graphs (294 s),
  6 more at the second size, outputs 3.6e-3 from eager in fp32 (likely
  near-tied significances sorted differently after other rounding).
"""
import argparse
import ast
import sys
import time

import torch
from torch._dynamo.utils import counters

from mmvit_backbones.models.backbones import CrossFormer, CrossFormerPP, PaleTransformer, SGFormer

# Every block kind once per stage width; stage maps of the two sizes differ in group counts and padding.
MODELS = {
    'pale': lambda **kw: PaleTransformer(
        arch=dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_heads=[2, 2, 4, 4]), drop_path_rate=0.,
        **kw),
    'crossformer': lambda **kw: CrossFormer(
        arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]), drop_path_rate=0., **kw),
    'crossformerpp': lambda **kw: CrossFormerPP(
        arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]), drop_path_rate=0., **kw),
    'sgformer': lambda **kw: SGFormer(
        arch=dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 1], num_heads=[2, 2, 4, 8]), drop_path_rate=0.,
        **kw),
}
# Stage-1 heights and widths differ from the first stage's 16 channels (a map whose height equals its channel
# count gets a graph of its own: PyTorch's convolution specialises that coincidence).
SIZES = [(72, 104), (88, 120)]
TOLERANCE = dict(rtol=1e-4, atol=1e-4)


def step(model, x):
    outs = model(x)
    loss = sum(out.square().mean() for out in outs)
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
    return outs, grads


def max_difference(got, expected) -> float:
    return max((a - b).abs().max().item() for a, b in zip(got, expected))


def check(name: str, device: str, options: dict) -> bool:
    torch.manual_seed(0)
    eager = MODELS[name]().to(device)
    compiled = MODELS[name](compile=dict(backend='inductor', options=options or None)).to(device)
    compiled.load_state_dict(eager.state_dict())
    torch._dynamo.reset()
    counters.clear()
    ok = True
    for index, size in enumerate(SIZES):
        x = torch.randn(2, 3, *size, device=device)
        graphs_before = counters['stats']['unique_graphs']
        start = time.perf_counter()
        outs, grads = step(compiled, x)
        first = time.perf_counter() - start
        start = time.perf_counter()
        step(compiled, x)
        warm = time.perf_counter() - start
        new_graphs = counters['stats']['unique_graphs'] - graphs_before
        ref_outs, ref_grads = step(eager, x)
        out_diff, grad_diff = max_difference(outs, ref_outs), max_difference(grads, ref_grads)
        close = all(torch.allclose(a, b, **TOLERANCE) for a, b in zip(outs, ref_outs)) and all(
            torch.allclose(a, b, **TOLERANCE) for a, b in zip(grads, ref_grads))
        recompiled = index > 0 and new_graphs > 0
        ok = ok and close and not recompiled
        print(f'{name} {size}: first step {first:.1f} s (compiling ~{first - warm:.1f} s), warm step {warm:.2f} s, '
              f'new graphs {new_graphs}, max |diff| outputs {out_diff:.2e} grads {grad_diff:.2e}'
              f'{"" if close else "  NOT CLOSE"}{"  RECOMPILED" if recompiled else ""}', flush=True)
    if counters['recompiles']:
        print(f'  recompile reasons: {dict(counters["recompiles"])}')
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=sorted(MODELS))
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--options', nargs='*', default=[], metavar='KEY=VALUE',
                        help='inductor options (compile=dict(options=...)), e.g. layout_optimization=False')
    args = parser.parse_args()
    options = {key: ast.literal_eval(value) for key, value in (item.split('=', 1) for item in args.options)}
    print(f'torch {torch.__version__}, device {args.device}, sizes {SIZES}, batch 2, fp32, train mode, '
          f'inductor options {options}')
    results = {name: check(name, args.device, options) for name in args.models}
    print('result:', ', '.join(f'{name} {"ok" if ok else "FAILED"}' for name, ok in results.items()))
    sys.exit(0 if all(results.values()) else 1)


if __name__ == '__main__':
    main()
