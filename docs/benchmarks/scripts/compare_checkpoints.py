"""Relative difference of the parameters of two checkpoints, and of the losses two runs logged.

    python docs/benchmarks/scripts/compare_checkpoints.py CKPT_A CKPT_B [--runs WORK_A WORK_B] [--out FILE.json]
"""
import argparse
import glob
import json
import os.path as osp

import torch


def losses(work_dir):
    """{iter: loss} of every training run logged in ``work_dir`` (a resumed run continues the first)."""
    out = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        for line in open(path):
            record = json.loads(line)
            if 'loss' in record:
                out[record['iter']] = record['loss']
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('a')
    parser.add_argument('b')
    parser.add_argument('--runs', nargs=2)
    parser.add_argument('--out')
    args = parser.parse_args()
    sd_a = torch.load(args.a, map_location='cpu', weights_only=False)['state_dict']
    sd_b = torch.load(args.b, map_location='cpu', weights_only=False)['state_dict']
    assert sd_a.keys() == sd_b.keys()
    num = sum(float((sd_a[k].double() - sd_b[k].double()).square().sum()) for k in sd_a if sd_a[k].is_floating_point())
    den = sum(float(sd_a[k].double().square().sum()) for k in sd_a if sd_a[k].is_floating_point())
    worst = max(((sd_a[k] - sd_b[k]).abs().max().item() / (sd_a[k].abs().max().item() + 1e-12), k)
                for k in sd_a if sd_a[k].is_floating_point() and sd_a[k].numel())
    result = dict(a=args.a, b=args.b, params_relative_l2=(num / den)**0.5,
                  worst_tensor=dict(rel=worst[0], key=worst[1]))
    if args.runs:
        la, lb = losses(args.runs[0]), losses(args.runs[1])
        common = sorted(set(la) & set(lb))
        result['iters_compared'] = [common[0], common[-1]] if common else None
        result['loss_max_abs_diff'] = max(abs(la[i] - lb[i]) for i in common) if common else None
        result['loss_mean_a'] = sum(la[i] for i in common) / len(common) if common else None
        result['loss_mean_b'] = sum(lb[i] for i in common) / len(common) if common else None
        result['loss_first_last_a'] = [la[common[0]], la[common[-1]]] if common else None
        result['loss_first_last_b'] = [lb[common[0]], lb[common[-1]]] if common else None
    print(json.dumps(result))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
