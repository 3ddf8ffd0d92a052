"""Convert an SG-Former checkpoint to this project's format, offline.

The released ``.pth.tar`` training files (``state_dict_ema`` is taken), bare
state dicts, and whole detectors / segmentors / classifiers are accepted. The
output holds ``{'state_dict': ...}`` with the released key names (this
project's backbone format, ``head.*`` kept), or with ``--classifier`` the
mmpretrain ``ImageClassifier`` layout (``backbone.*``, ``head.fc.*``). It holds
tensors only, so it loads with ``torch.load(weights_only=True)``.

    python tools/model_converters/sgformer2mmvit.py sgformer_s.pth.tar sgformer-s_in1k.pth [--classifier]
"""
import argparse
from typing import List, Optional

from mmvit_backbones.checkpoint import CheckpointFileError, CheckpointMismatchError, convert_checkpoint_file
from mmvit_backbones.models.backbones.sg_former import convert_sgformer_state_dict


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Convert an SG-Former checkpoint to the mmvit format.')
    parser.add_argument('src', help='released or previously converted checkpoint')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--classifier', action='store_true',
                        help='write the mmpretrain ImageClassifier layout (backbone.*, head.fc.*)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    try:
        state_dict = convert_checkpoint_file(args.src, args.dst, convert_sgformer_state_dict,
                                             classifier=args.classifier, families=('SGFormer', ))
    except (CheckpointFileError, CheckpointMismatchError) as err:
        raise SystemExit(f'error: {err}') from err
    print(f'wrote {len(state_dict)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
