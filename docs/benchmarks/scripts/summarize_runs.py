"""Summarise mmengine training/test work dirs: losses first vs last, NaN check, iteration time, memory, metrics.

    python docs/benchmarks/scripts/summarize_runs.py WORK_DIR [WORK_DIR ...] [--skip 50] [--out FILE.json]

A work dir holds one training run (``*/vis_data/scalars.json`` with ``loss``,
``time`` and ``memory`` every logging interval) and optionally the test run of
its checkpoint in ``test/`` (its metrics are the last record of that run's
``*/*.json``).
"""
import argparse
import glob
import json
import math
import os.path as osp


def read_records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def summarize(work_dir, skip):
    train = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    records = [r for p in train for r in read_records(p) if 'loss' in r]
    if not records:
        return dict(work_dir=work_dir, error='no training records')
    losses = [r['loss'] for r in records]
    timed = [r for r in records if r['iter'] > skip and 'time' in r]
    summary = dict(
        work_dir=work_dir,
        iters=records[-1]['iter'],
        loss_first=round(sum(losses[:3]) / len(losses[:3]), 4),
        loss_last=round(sum(losses[-3:]) / len(losses[-3:]), 4),
        finite=all(math.isfinite(v) for r in records for k, v in r.items() if 'loss' in k),
        sec_per_iter=round(sum(r['time'] for r in timed) / len(timed), 4) if timed else None,
        data_sec_per_iter=round(sum(r.get('data_time', 0) for r in timed) / len(timed), 4) if timed else None,
        max_memory_mib=max(r.get('memory', 0) for r in records))
    summary['loss_fell'] = summary['loss_last'] < summary['loss_first']
    tests = sorted(glob.glob(osp.join(work_dir, 'test', '*', '*.json')))
    if tests:
        summary['test_metrics'] = read_records(tests[-1])[-1]
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+')
    parser.add_argument('--skip', type=int, default=50, help='iterations left out of the time average (warm-up)')
    parser.add_argument('--out')
    args = parser.parse_args()
    summaries = [summarize(w, args.skip) for w in args.work_dirs]
    for s in summaries:
        print(json.dumps(s))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(summaries, f, indent=1)


if __name__ == '__main__':
    main()
