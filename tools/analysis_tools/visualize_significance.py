"""Draw SG-Former's significance maps and token reallocation for one image.

For stages 1-3 this writes ``OUT_DIR/<image name>_stage<i>.png`` with three
panels: the image; the significance map of the stage's last hybrid-scale block
as a heat overlay; and how many key tokens each 7x7-token region received when
the self-guided block after it reallocated the tokens (the idea of the paper's
Figure 2: salient regions keep more tokens).

    python tools/analysis_tools/visualize_significance.py IMAGE CONFIG [CHECKPOINT] --out-dir DIR

CONFIG is any config whose ``model`` is an ``SGFormer`` or has one as
``model.backbone`` (classifier, detector, segmentor); CHECKPOINT is any file
``init_cfg=dict(type='Pretrained')`` accepts (released, converted, whole
model). Without a checkpoint the weights are random.
"""
import argparse
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import MODELS

import mmvit_backbones  # noqa: F401  (registers SGFormer)
from mmvit_backbones.models.backbones.sg_former import SGFormer, key_token_shares

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Visualise SG-Former significance maps and token reallocation.')
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='config whose model (or model.backbone) is an SGFormer')
    parser.add_argument('checkpoint', nargs='?', default=None, help='checkpoint (random weights without one)')
    parser.add_argument('--out-dir', default='work_dirs/significance', help='where the PNGs go')
    parser.add_argument('--short-side', type=int, default=224,
                        help='resize the image so that its shorter side has this length; 0 keeps its size')
    parser.add_argument('--dpi', type=int, default=80, help='resolution of the figures')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random weights used without a checkpoint')
    parser.add_argument('--device', default='cpu')
    return parser.parse_args(argv)


def build_backbone(config: Config, checkpoint: Optional[str] = None) -> SGFormer:
    """The SGFormer of ``config.model`` (or its backbone), loaded from ``checkpoint``."""
    model_cfg = config.model
    if model_cfg.get('type') != 'SGFormer':
        model_cfg = model_cfg.get('backbone') or {}
    if model_cfg.get('type') != 'SGFormer':
        raise ValueError(f'the config model is {config.model.get("type")!r} with backbone '
                         f'{model_cfg.get("type")!r}; one of them must be an SGFormer')
    model_cfg = dict(model_cfg)
    if checkpoint:
        model_cfg['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint)
    else:
        print_log('no checkpoint given: the significance maps come from random weights', logger='current')
    backbone = MODELS.build(model_cfg)
    backbone.init_weights()
    return backbone.eval()


def load_image(path: str, short_side: int = 224) -> np.ndarray:
    """An RGB ``uint8`` image, resized (bicubic) to a shorter side of ``short_side`` unless 0."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f'cannot read an image from {path!r}')
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if short_side:
        scale = short_side / min(image.shape[:2])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
    return image


def normalisation(config: Config) -> Dict:
    """Mean, std and channel order of the config's data preprocessor (ImageNet's by default)."""
    preprocessor = config.model.get('data_preprocessor') or {}
    return dict(
        mean=preprocessor.get('mean', IMAGENET_MEAN),
        std=preprocessor.get('std', IMAGENET_STD),
        to_rgb=preprocessor.get('bgr_to_rgb', preprocessor.get('to_rgb', True)))


@torch.no_grad()
def analyse(backbone: SGFormer, image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
            std: Sequence[float] = IMAGENET_STD, to_rgb: bool = True) -> List[Dict]:
    """Significance and reallocation of stages 1-3 for an RGB ``uint8`` image.

    Returns:
        list[dict]: per stage ``significance`` and ``shares`` (``(H_i, W_i)``:
        the key tokens each token turned into), ``regions`` (key tokens per
        ``window_size`` x ``window_size`` region), ``num_keys`` and ``num_tokens``.
    """
    pixels = image if to_rgb else image[..., ::-1]
    device = next(backbone.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(pixels)).to(device=device, dtype=torch.float32)
    x = (x - x.new_tensor(mean)) / x.new_tensor(std)
    _, maps = backbone.forward_with_significance(x.permute(2, 0, 1)[None])
    ws = backbone.window_size
    stages = []
    for stage, significance in enumerate(maps):
        shares = key_token_shares(significance, backbone.merge_rates[stage], backbone.stable_sort)[0]
        h, w = shares.shape
        regions = F.pad(shares, (0, -w % ws, 0, -h % ws)).reshape(-(-h // ws), ws, -(-w // ws), ws).sum((1, 3))
        stages.append(
            dict(significance=significance[0].cpu().numpy(), shares=shares.cpu().numpy(),
                 regions=regions.cpu().numpy(), num_keys=round(shares.sum().item()), num_tokens=h * w))
    return stages


def render(image: np.ndarray, stage: Dict, index: int, path: str, window_size: int = 7, dpi: int = 80) -> None:
    """Write the three-panel figure of one stage to ``path``."""
    height, width = image.shape[:2]
    significance, regions = stage['significance'], stage['regions']
    tokens_h, tokens_w = significance.shape
    fig = Figure(figsize=(12, 3.6 * height / width + 0.5), layout='constrained')
    axes = fig.subplots(1, 3)
    axes[0].imshow(image)
    axes[0].set_title('input')

    axes[1].imshow(image)
    heat = axes[1].imshow(significance, cmap='jet', alpha=0.5, extent=(0, width, height, 0),
                          interpolation='nearest')
    fig.colorbar(heat, ax=axes[1], fraction=0.046, pad=0.02)
    axes[1].set_title(f'stage {index} significance ({tokens_h}x{tokens_w} tokens)')

    # Regions cover window_size tokens; border regions may extend past the image.
    region_h, region_w = window_size * height / tokens_h, window_size * width / tokens_w
    axes[2].imshow(image)
    keys = axes[2].imshow(regions, cmap='viridis', alpha=0.55, interpolation='nearest',
                          extent=(0, regions.shape[1] * region_w, regions.shape[0] * region_h, 0))
    fig.colorbar(keys, ax=axes[2], fraction=0.046, pad=0.02)
    if regions.size <= 144:
        for (row, col), value in np.ndenumerate(regions):
            axes[2].text((col + .5) * region_w, (row + .5) * region_h, f'{value:.1f}', ha='center', va='center',
                         color='white', fontsize=8, clip_on=True)
    axes[2].set_title(f'key tokens per {window_size}x{window_size}-token region '
                      f'({stage["num_keys"]} for {stage["num_tokens"]} tokens)', fontsize=9)
    for ax in axes:
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.axis('off')
    fig.savefig(path, dpi=dpi)


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    args = parse_args(argv)
    config = Config.fromfile(args.config)
    torch.manual_seed(args.seed)
    backbone = build_backbone(config, args.checkpoint).to(args.device)
    image = load_image(args.image, args.short_side)
    stages = analyse(backbone, image, **normalisation(config))
    os.makedirs(args.out_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(args.image))[0]
    paths = []
    for index, stage in enumerate(stages, start=1):
        path = osp.join(args.out_dir, f'{stem}_stage{index}.png')
        render(image, stage, index, path, backbone.window_size, args.dpi)
        paths.append(path)
        print(f'stage {index}: {stage["num_tokens"]} tokens -> {stage["num_keys"]} key tokens; wrote {path}')
    return paths


if __name__ == '__main__':
    main()
