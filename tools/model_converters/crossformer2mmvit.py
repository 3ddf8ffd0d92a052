"""Convert a CrossFormer / CrossFormer++ checkpoint to this project's format.

Accepts the released ImageNet files (``{'model': ...}``), the released v1
COCO / ADE20K detectors and segmentors (mmdet 2.x / mmseg 0.x, ``backbone.*``)
and files already converted. The output ``{'state_dict': ...}`` holds tensors
only; with ``--classifier`` it is laid out as an mmpretrain ``ImageClassifier``
(backbone built with ``final_norm=True, out_indices=(3, )``).

Example:
    python tools/model_converters/crossformer2mmvit.py crossformer-s.pth crossformer-s_mmvit.pth
"""
import argparse
from typing import List, Optional

from mmvit_backbones.checkpoint import CheckpointFileError, CheckpointMismatchError, convert_checkpoint_file
from mmvit_backbones.models.backbones.crossformer import convert_crossformer_state_dict


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='released or converted checkpoint')
    parser.add_argument('dst', help='output path')
    parser.add_argument('--classifier', action='store_true', help='write the mmpretrain ImageClassifier layout')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    try:
        state_dict = convert_checkpoint_file(args.src, args.dst, convert_crossformer_state_dict,
                                             classifier=args.classifier, families=('CrossFormer', 'CrossFormerPP'))
    except (CheckpointFileError, CheckpointMismatchError) as err:
        raise SystemExit(f'error: {err}') from err
    print(f'wrote {len(state_dict)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
