"""Generate the embedded demo dataset: coloured shapes on textured backgrounds.

One set of images, annotated twice:

* COCO instance format (``annotations/instances_{train,val}.json``): boxes and
  polygon masks of circles, squares and triangles;
* ADE20K semantic format (``annotations/{training,validation}/*.png``): class-id
  maps where 0 is "unlabelled" (reduced away by ``reduce_zero_label``), 1 is
  background and 2..4 are the shapes.

Images go to ``images/{training,validation}/*.jpg``. The output depends only on
the seed and the sizes, so every machine builds the same data.

    python tools/misc/generate_demo_data.py data/demo
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

CLASSES = ('circle', 'square', 'triangle')
SPLITS = (('train', 'training'), ('val', 'validation'))


def shape_polygon(kind: str, center: Tuple[float, float], radius: float, angle: float) -> np.ndarray:
    """Vertices (K, 2) in (x, y) of a shape inscribed in a circle of ``radius``."""
    vertices = {'circle': 32, 'square': 4, 'triangle': 3}[kind]
    theta = angle + np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    return np.stack([center[0] + radius * np.cos(theta), center[1] + radius * np.sin(theta)], axis=1)


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth colour gradient plus noise, so that colour alone does not give shapes away."""
    yy, xx = np.mgrid[0:height, 0:width] / np.array([height, width]).reshape(2, 1, 1)
    corners = rng.uniform(40, 215, size=(4, 3))
    image = (corners[0] * (1 - xx[..., None]) * (1 - yy[..., None]) + corners[1] * xx[..., None] *
             (1 - yy[..., None]) + corners[2] * (1 - xx[..., None]) * yy[..., None] +
             corners[3] * xx[..., None] * yy[..., None])
    image += rng.normal(0, 12, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_image(rng: np.random.Generator, height: int, width: int) -> Tuple[np.ndarray, np.ndarray, List[Dict]]:
    image = background(rng, height, width)
    semantic = np.ones((height, width), np.uint8)  # 1 = background
    objects, boxes = [], []
    for _ in range(int(rng.integers(1, 5))):
        for _attempt in range(20):  # shapes do not overlap, so every polygon is a full instance mask
            radius = float(rng.uniform(0.09, 0.22) * min(height, width))
            center = rng.uniform(radius + 2, np.array([width, height]) - radius - 2, size=2)
            box = np.concatenate([center - radius, center + radius])
            if all(box[0] > b[2] + 3 or box[2] < b[0] - 3 or box[1] > b[3] + 3 or box[3] < b[1] - 3 for b in boxes):
                break
        else:
            continue
        label = int(rng.integers(len(CLASSES)))
        polygon = shape_polygon(CLASSES[label], tuple(center), radius, float(rng.uniform(0, 2 * np.pi)))
        points = np.round(polygon).astype(np.int32)
        colour = tuple(int(c) for c in rng.uniform(0, 255, size=3))
        cv2.fillPoly(image, [points], colour)
        cv2.fillPoly(semantic, [points], label + 2)
        boxes.append(box)
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        area = np.zeros((height, width), np.uint8)
        cv2.fillPoly(area, [points], 1)
        objects.append(dict(category_id=label + 1, polygon=points.flatten().tolist(),
                            bbox=[int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)], area=float(area.sum())))
    return image, semantic, objects


def generate(out_dir: str, num_train: int = 240, num_val: int = 60, size: int = 128, seed: int = 0,
             width: Optional[int] = None) -> None:
    """Images of ``size`` x ``width`` (height x width; square by default)."""
    width = width or size
    rng = np.random.default_rng(seed)
    for split, ade_split in SPLITS:
        os.makedirs(osp.join(out_dir, 'images', ade_split), exist_ok=True)
        os.makedirs(osp.join(out_dir, 'annotations', ade_split), exist_ok=True)
        images, annotations = [], []
        for index in range(num_train if split == 'train' else num_val):
            image, semantic, objects = make_image(rng, size, width)
            name = f'{split}_{index:05d}'
            cv2.imwrite(osp.join(out_dir, 'images', ade_split, name + '.jpg'), image,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(osp.join(out_dir, 'annotations', ade_split, name + '.png'), semantic)
            image_id = index + 1
            images.append(dict(id=image_id, file_name=name + '.jpg', height=size, width=width))
            for obj in objects:
                annotations.append(dict(id=len(annotations) + 1, image_id=image_id, category_id=obj['category_id'],
                                        bbox=obj['bbox'], area=obj['area'], segmentation=[obj['polygon']],
                                        iscrowd=0))
        coco = dict(images=images, annotations=annotations,
                    categories=[dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(CLASSES)])
        with open(osp.join(out_dir, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(coco, f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out_dir', help='where to write the dataset (e.g. data/demo)')
    parser.add_argument('--num-train', type=int, default=240)
    parser.add_argument('--num-val', type=int, default=60)
    parser.add_argument('--size', type=int, default=128, help='image side (height) in pixels')
    parser.add_argument('--width', type=int, help='image width in pixels (default: --size)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    generate(args.out_dir, args.num_train, args.num_val, args.size, args.seed, args.width)
    print(f'demo data written to {args.out_dir} '
          f'({args.num_train} train / {args.num_val} val images of {args.size}x{args.width or args.size})')


if __name__ == '__main__':
    main()
