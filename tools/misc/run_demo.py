"""Train and evaluate the demo models on the generated shapes data (what `make demo` runs).

For each demo config: ``tools/train.py`` (its progress and ETA are shown as
they come), ``tools/test.py`` on the last checkpoint, then one table of the
metrics reached and the time each step took.

    python tools/misc/run_demo.py --data-root data/demo --work-dir work_dirs/demo
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMOS = [
    ('instance segmentation (COCO format)', 'configs/demo/mask-rcnn_crossformer-demo_shapes-128.py',
     ['coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50']),
    ('semantic segmentation (ADE20K format)', 'configs/demo/fpn_crossformer-demo_shapes-128.py', ['mIoU', 'aAcc']),
]


def run(args: List[str]) -> None:
    print('+', ' '.join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def test_metrics(work_dir: str) -> Dict[str, float]:
    """The metrics tools/test.py wrote last (mmengine's ``<timestamp>/<timestamp>.json``)."""
    runs = sorted(d for d in os.listdir(work_dir) if osp.isfile(osp.join(work_dir, d, f'{d}.json')))
    if not runs:
        raise FileNotFoundError(f'no metrics file under {work_dir}')
    with open(osp.join(work_dir, runs[-1], f'{runs[-1]}.json')) as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data-root', default='data/demo')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    args = parser.parse_args()
    data_root = osp.abspath(args.data_root) + '/'
    results: List[Tuple[str, str, Dict[str, float], float]] = []
    start = time.time()
    for task, config, keys in DEMOS:
        work_dir = osp.abspath(osp.join(args.work_dir, osp.splitext(osp.basename(config))[0]))
        data_options = [f'{loader}.dataset.data_root={data_root}'
                        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
        if 'mask-rcnn' in config:
            data_options += [f'{evaluator}.ann_file={data_root}annotations/instances_val.json'
                             for evaluator in ('val_evaluator', 'test_evaluator')]
        step_start = time.time()
        run(['tools/train.py', config, '--work-dir', work_dir, '--cfg-options', *data_options])
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
        run(['tools/test.py', config, checkpoint, '--work-dir', work_dir, '--cfg-options', *data_options])
        metrics = test_metrics(work_dir)
        results.append((task, config, {k: metrics[k] for k in keys}, time.time() - step_start))

    print('\n' + '=' * 80)
    print(f'Demo finished in {(time.time() - start) / 60:.1f} min')
    for task, config, metrics, seconds in results:
        print(f'\n{task}: {config} ({seconds / 60:.1f} min)')
        for key, value in metrics.items():
            print(f'  {key:<20} {value:.4f}' if isinstance(value, float) else f'  {key:<20} {value}')


if __name__ == '__main__':
    main()
