"""One short Markdown table from the JSONs of a speed run (``h200_s3_speed.sh``, ``h200_s3_compile.sh``).

    python docs/benchmarks/scripts/summarize_speed.py --pipeline P.json [...] \
        --backbone after=A.json before=B.json [...]

Pipelines (``benchmark_pipeline.py``): mean s/iter, ratio to the peer, data
time and peak memory per config. Backbones (``benchmark_backbone.py``): ms per
iteration of each model, geometry, mode and precision in each labelled run, with
bf16 / fp32 throughput per run.
"""
import argparse
import json
from collections import defaultdict
from typing import Dict, List, Sequence


def pipeline_rows(paths: Sequence[str]) -> List[str]:
    lines = ['| pipeline | device | s/iter (mean) | median | / peer | data_time | max MiB | shapes |',
             '|---|---|---|---|---|---|---|---|']
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        for entry in report['results']:
            if entry['status'] != 'ok':
                lines.append(f"| {entry['name']} | | {entry['error'][:100]} | | | | | |")
                continue
            shapes = ', '.join(f'{s} x{n}' for s, n in entry['input_shapes'].items())
            ratio = entry.get('ratio_to_peer')
            lines.append(f"| {entry['name']} | {entry['device']} | {entry['time']['mean']:.4f} "
                         f"| {entry['time']['median']:.4f} | {'' if ratio is None else f'{ratio:.2f}'} "
                         f"| {entry['data_time']['mean']:.4f} | {entry['max_memory_mib'] or ''} | {shapes} |")
    return lines


def backbone_rows(labelled: Sequence[str]) -> List[str]:
    runs: Dict[str, Dict] = {}
    for item in labelled:
        label, _, path = item.partition('=')
        with open(path) as f:
            runs[label] = json.load(f)
    table: Dict[tuple, Dict[str, float]] = defaultdict(dict)
    for label, report in runs.items():
        for model in report['models']:
            for m in model['measurements']:
                if 'error' in m:
                    continue
                table[(model['name'], m['geometry'], m['mode'])][f"{label} {m['precision']}"] = m['ms_per_iter']
    labels = list(runs)
    header = ['model', 'geometry', 'mode'] + [f'{label} {p} ms' for label in labels for p in ('fp32', 'bf16')]
    header += [f'{label} bf16/fp32 speed' for label in labels]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for (name, geometry, mode), values in table.items():
        cells = [name, geometry, mode]
        cells += [f"{values[f'{label} {p}']:.1f}" if f'{label} {p}' in values else ''
                  for label in labels for p in ('fp32', 'bf16')]
        for label in labels:
            fp32, bf16 = values.get(f'{label} fp32'), values.get(f'{label} bf16')
            cells.append(f'{fp32 / bf16:.2f}' if fp32 and bf16 else '')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--pipeline', nargs='*', default=[], help='benchmark_pipeline.py JSONs')
    parser.add_argument('--backbone', nargs='*', default=[], metavar='LABEL=JSON',
                        help='benchmark_backbone.py JSONs, each with a label (e.g. before=, after=)')
    args = parser.parse_args(argv)
    lines = []
    if args.pipeline:
        lines += pipeline_rows(args.pipeline) + ['']
    if args.backbone:
        lines += backbone_rows(args.backbone)
    text = '\n'.join(lines)
    print(text)
    return text


if __name__ == '__main__':
    main()
