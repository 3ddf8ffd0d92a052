"""Write the model-zoo tables: measured params/FLOPs of every config beside the papers' figures.

    python tools/analysis_tools/generate_model_zoo.py [--out docs/model_zoo.md] [--readme README.md]
        [--only 'configs/sgformer/*' | --render-only] [--device cuda] [--jobs 4]

The models and the papers' figures (parameters, FLOPs, metrics, released
weights) come from ``configs/*/metafile.yml``; parameters and FLOPs are
measured by ``get_flops.py`` (``config_complexity``) at the input size the
papers state: 224x224 for ImageNet, 1280x800 for COCO, 512x2048 for ADE20K.
The tables are written between ``<!-- model-zoo-start -->`` and
``<!-- model-zoo-end -->`` of ``--out`` (created if needed) and, with
``--readme``, of that file too, with links relative to each file.
``--only`` re-measures the matching configs and keeps the other rows of
``--out`` as they are; ``--render-only`` measures nothing and rewrites the
tables from ``--out`` (e.g. into ``--readme``). Configs that build the same
model (e.g. Mask R-CNN 1x and 3x) are measured once.
"""
import argparse
import fnmatch
import json
import os
import os.path as osp
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from glob import glob
from multiprocessing import get_context
from typing import Dict, List, Tuple

import yaml

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
START, END = '<!-- model-zoo-start -->', '<!-- model-zoo-end -->'
# config folder -> model name prefix, in table order
FAMILIES = {'sgformer': 'SG-Former', 'pale': 'Pale', 'crossformer': 'CrossFormer', 'crossformerpp': 'CrossFormer++'}

# (section title, pattern of the config names, metric columns: (header, task, metric name))
SECTIONS = [
    ('ImageNet-1K classification (224x224)', r'_8xb128_in1k$',
     [('Top-1 (%)', 'Image Classification', 'Top 1 Accuracy')]),
    ('COCO: Mask R-CNN 1x (FLOPs at 1280x800)', r'^mask-rcnn_.*_1x_coco$',
     [('box AP', 'Object Detection', 'box AP'), ('mask AP', 'Instance Segmentation', 'mask AP')]),
    ('COCO: Mask R-CNN 3x, multi-scale training (FLOPs at 1280x800)', r'^mask-rcnn_.*_3x-ms_coco$',
     [('box AP', 'Object Detection', 'box AP'), ('mask AP', 'Instance Segmentation', 'mask AP')]),
    ('COCO: RetinaNet 1x (FLOPs at 1280x800)', r'^retinanet_.*_1x_coco$',
     [('box AP', 'Object Detection', 'box AP')]),
    ('ADE20K: Semantic FPN 80k (FLOPs at 512x2048)', r'^fpn_.*_ade20k-512x512$',
     [('mIoU', 'Semantic Segmentation', 'mIoU')]),
    ('ADE20K: UperNet 160k (FLOPs at 512x2048)', r'^upernet_.*_ade20k-512x512$',
     [('mIoU', 'Semantic Segmentation', 'mIoU'), ('mIoU (ms+flip)', 'Semantic Segmentation', 'mIoU(ms+flip)')]),
]
PARAMS, FLOPS, CONFIG = 'Params (M)', 'FLOPs (G)', 'Config'

DEFAULT_HEADER = """# Model zoo

Parameters and FLOPs are measured on the configs of this repository with
`tools/analysis_tools/get_flops.py` (whole model, a FLOP being one
multiply-accumulate); the paper columns and the metrics are the papers'
figures (`configs/*/metafile.yml`), which `docs/configs.md` compares with the
measurements. Regenerate with `tools/analysis_tools/generate_model_zoo.py`.

"""


def load_metafiles(repo: str = REPO) -> List[dict]:
    """Metafile entries of the families in table order, each with its collection name."""
    models = []
    for family in FAMILIES:
        with open(osp.join(repo, 'configs', family, 'metafile.yml')) as f:
            models.extend(yaml.safe_load(f)['Models'])
    return models


def model_name(entry: dict) -> str:
    """Display name such as ``SG-Former-S``, from the config's folder and variant letter."""
    family = osp.basename(osp.dirname(entry['Config']))
    variant = re.search(r'-([a-z])_', osp.basename(entry['Config'])).group(1)
    return f'{FAMILIES[family]}-{variant.upper()}'


def paper_metric(entry: dict, task: str, metric: str) -> str:
    for result in entry.get('Results') or []:
        if result['Task'] == task and metric in result['Metrics']:
            return str(result['Metrics'][metric])
    return '-'


# -- reading a table back -------------------------------------------------------------
def split_row(line: str) -> List[str]:
    return [cell.strip() for cell in line.strip().strip('|').split('|')]


def read_table_rows(markdown: str) -> Dict[str, Dict[str, str]]:
    """Rows of the generated tables, by config path (``configs/...py``), as {header: cell}."""
    rows = {}
    header = None
    for line in markdown.splitlines():
        if not line.startswith('|'):
            header = None
            continue
        cells = split_row(line)
        if header is None:
            header = cells
        elif not set(line) <= set('|-: '):
            row = dict(zip(header, cells))
            link = re.search(r'\]\([^)]*?(configs/[a-z]+/[^/)]+\.py)\)', row.get(CONFIG, ''))
            if link:
                rows[link.group(1)] = row
    return rows


def read_table_params(markdown: str) -> Dict[str, float]:
    """Measured parameters (millions, as printed) of each config in the tables."""
    return {path: float(row[PARAMS]) for path, row in read_table_rows(markdown).items() if row.get(PARAMS, '-') != '-'}


# -- writing -----------------------------------------------------------------------------
def render(models: List[dict], measured: Dict[str, Tuple[float, float]], out_dir: str) -> str:
    """The generated block (without markers), with config links relative to the folder ``out_dir``."""
    lines = []
    for title, pattern, metrics in SECTIONS:
        entries = [m for m in models if re.search(pattern, m['Name'])]
        lines += [f'### {title}', '']
        header = ['Model', PARAMS, FLOPS, 'Paper params (M)', 'Paper FLOPs (G)'] + [h for h, _, _ in metrics]
        header += [CONFIG, 'Weights']
        lines += ['| ' + ' | '.join(header) + ' |', '|' + '|'.join(['---'] * len(header)) + '|']
        for entry in entries:
            params, flops = measured.get(entry['Config'], (None, None))
            meta = entry.get('Metadata', {})
            link = osp.relpath(osp.join(REPO, entry['Config']), out_dir).replace(os.sep, '/')
            cells = [
                model_name(entry),
                '-' if params is None else f'{params:.2f}',
                '-' if flops is None else f'{flops:.1f}',
                str(meta.get('Paper Parameters (M)', '-')),
                str(meta.get('Paper FLOPs (G)', '-')),
            ]
            cells += [paper_metric(entry, task, metric) for _, task, metric in metrics]
            cells.append(f'[config]({link})')
            cells.append(f'[released]({entry["Weights"]})' if entry.get('Weights') else '-')
            lines.append('| ' + ' | '.join(cells) + ' |')
        lines.append('')
    return '\n'.join(lines)


def splice(text: str, block: str) -> str:
    """Replace what lies between the markers of ``text`` with ``block``."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f'expected one {START} ... {END} pair')
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return f'{head}{START}\n{block}\n{END}{tail}'


def write_tables(path: str, models: List[dict], measured: Dict[str, Tuple[float, float]], create: bool) -> None:
    if osp.exists(path):
        with open(path) as f:
            text = f.read()
    elif create:
        text = f'{DEFAULT_HEADER}{START}\n{END}\n'
    else:
        raise FileNotFoundError(path)
    with open(path, 'w') as f:
        f.write(splice(text, render(models, measured, osp.dirname(osp.abspath(path)))))


# -- measuring ---------------------------------------------------------------------------
def measure(config: str, device: str) -> Tuple[str, float, float, Dict[str, int]]:
    """(config, params in M, GFLOPs, skipped ops) of one config, at its library's paper input size."""
    if HERE not in sys.path:  # get_flops.py lies beside this script
        sys.path.insert(0, HERE)
    from get_flops import config_complexity
    from mmengine.config import Config

    result = config_complexity(Config.fromfile(osp.join(REPO, config)), device=device)
    return config, result['params'] / 1e6, result['flops'] / 1e9, result['unsupported_ops']


def model_key(config: str) -> str:
    """What the measurement depends on: the library and the model settings of ``config``."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, config))
    return json.dumps([cfg.get('default_scope'), cfg.to_dict()['model']], sort_keys=True, default=str)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Measure every config of the zoo and write the tables')
    parser.add_argument('--out', default=osp.join(REPO, 'docs', 'model_zoo.md'), help='markdown file to write')
    parser.add_argument('--readme', help='also write the tables between the markers of this file')
    parser.add_argument('--only', nargs='+', metavar='GLOB',
                        help='re-measure only these configs (e.g. "configs/pale/*"); other rows keep their values')
    parser.add_argument('--render-only', action='store_true',
                        help='measure nothing: rewrite the tables from the values already in --out')
    parser.add_argument('--device', default='cpu', help='device to run the models on, e.g. cuda')
    parser.add_argument('--jobs', type=int, default=1, help='configs measured in parallel processes')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    models = load_metafiles()
    configs = [m['Config'] for m in models]
    missing = sorted({osp.relpath(p, REPO) for f in FAMILIES for p in glob(osp.join(REPO, 'configs', f, '*.py'))}
                     - set(configs))
    if missing:
        raise SystemExit(f'configs without a metafile entry: {missing}')

    measured: Dict[str, Tuple[float, float]] = {}
    if (args.only or args.render_only) and osp.exists(args.out):
        with open(args.out) as f:
            for path, row in read_table_rows(f.read()).items():
                if row.get(PARAMS, '-') != '-' and row.get(FLOPS, '-') != '-':
                    measured[path] = (float(row[PARAMS]), float(row[FLOPS]))
    todo = [] if args.render_only else [
        c for c in configs if not args.only or any(fnmatch.fnmatch(c, pattern) for pattern in args.only)]
    same_model: Dict[str, List[str]] = {}
    for config in todo:
        same_model.setdefault(model_key(config), []).append(config)
    first = [group[0] for group in same_model.values()]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context('spawn')) as pool:
            results = pool.map(measure, first, [args.device] * len(first))
    else:
        results = (measure(config, args.device) for config in first)
    for (_, params, flops, skipped), group in zip(results, same_model.values()):
        for same in group:
            measured[same] = (params, flops)
        print(f'{", ".join(group)}: {params:.2f} M params, {flops:.1f} GFLOPs', flush=True)
        if skipped:
            print(f'  not counted: {skipped}', flush=True)
        write_tables(args.out, models, measured, create=True)  # progress survives an interruption

    write_tables(args.out, models, measured, create=True)
    if args.readme:
        write_tables(args.readme, models, measured, create=False)


if __name__ == '__main__':
    main()
