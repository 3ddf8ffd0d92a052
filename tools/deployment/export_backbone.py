"""Export a backbone with torch.export or to ONNX.

    python tools/deployment/export_backbone.py CONFIG|Type:arch --format {export,onnx} --shape H W \
        [--dynamic] --out FILE

``--format export`` writes a ``torch.export`` program (load it with ``torch.export.load``);
``--format onnx`` an ONNX model (input ``x``, outputs ``out0`` ...). ``--dynamic`` makes the batch
size, height and width symbolic; without it the graph holds for the export size only. The logic
lives in :mod:`mmvit_backbones.deployment`.
"""
import argparse

from mmvit_backbones.deployment import FORMATS, export_backbone


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model', help='a config file (its model.backbone) or Type:arch, e.g. CrossFormer:s')
    parser.add_argument('--format', choices=FORMATS, required=True)
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'), required=True)
    parser.add_argument('--dynamic', action='store_true', help='symbolic batch size, height and width')
    parser.add_argument('--out', required=True, help='output file')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    out = export_backbone(args.model, args.format, tuple(args.shape), args.out, dynamic=args.dynamic)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
