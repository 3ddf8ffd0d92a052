"""tools/analysis_tools/visualize_significance.py on a small synthetic image and a tiny model."""
import importlib.util
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmvit_backbones.models.backbones import SGFormer
from mmvit_backbones.models.backbones.sg_former import reallocation_plan

ROOT = osp.join(osp.dirname(__file__), '..', '..')
TINY = dict(embed_dims=[16, 32, 64, 32], depths=[2, 2, 2, 1], num_heads=[2, 2, 4, 2])


def load_tool():
    path = osp.join(ROOT, 'tools', 'analysis_tools', 'visualize_significance.py')
    spec = importlib.util.spec_from_file_location('visualize_significance', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def inputs(tmp_path):
    image = np.zeros((70, 90, 3), np.uint8)
    image[..., 0] = np.linspace(0, 255, 90, dtype=np.uint8)  # a gradient
    image[20:45, 30:60] = (250, 240, 30)  # and a bright rectangle
    image_path = str(tmp_path / 'shapes.png')
    cv2.imwrite(image_path, image)
    config_path = str(tmp_path / 'tiny_classifier.py')
    with open(config_path, 'w') as f:  # the tool takes the backbone out of a whole model
        f.write(f'model = dict(type="ImageClassifier", backbone=dict(type="SGFormer", arch={TINY!r}),\n'
                f'             data_preprocessor=dict(mean=[120., 110., 100.], std=[60., 60., 60.]))\n')
    torch.manual_seed(0)
    model = SGFormer(arch=TINY)
    model.init_weights()
    checkpoint_path = str(tmp_path / 'tiny.pth')
    torch.save(dict(state_dict={'backbone.' + k: v for k, v in model.state_dict().items()}), checkpoint_path)
    return image_path, config_path, checkpoint_path, model


def test_writes_one_figure_per_stage(inputs, tmp_path):
    image_path, config_path, checkpoint_path, _ = inputs
    out_dir = str(tmp_path / 'out')
    paths = load_tool().main([image_path, config_path, checkpoint_path, '--out-dir', out_dir, '--short-side', '0'])
    assert paths == [osp.join(out_dir, f'shapes_stage{i}.png') for i in (1, 2, 3)]
    for path in paths:
        figure = cv2.imread(path)
        assert figure is not None and figure.shape[0] > 100 and figure.shape[1] > 3 * figure.shape[0] / 2
        assert figure.std() > 10  # not a blank canvas


def test_significance_and_reallocation_values_are_sane(inputs):
    image_path, config_path, checkpoint_path, model = inputs
    tool = load_tool()
    config = Config.fromfile(config_path)
    backbone = tool.build_backbone(config, checkpoint_path)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in backbone.state_dict().items())
    image = tool.load_image(image_path, short_side=0)
    assert image.shape == (70, 90, 3) and tuple(image[30, 40]) == (30, 240, 250)  # RGB
    stages = tool.analyse(backbone, image, **tool.normalisation(config))
    sizes = [(18, 23), (9, 12), (5, 6)]
    for stage, (h, w), rates in zip(stages, sizes, SGFormer.merge_rates):
        assert stage['significance'].shape == (h, w) and stage['shares'].shape == (h, w)
        assert np.isfinite(stage['significance']).all() and (stage['significance'] > 0).all()
        assert stage['regions'].shape == (-(-h // 7), -(-w // 7))
        assert stage['num_tokens'] == h * w
        assert stage['num_keys'] == reallocation_plan(h * w, rates).num_keys
        assert stage['regions'].sum() == pytest.approx(stage['num_keys'], rel=1e-5)
    assert tool.load_image(image_path).shape[:2] == (224, 288)  # shorter side resized to 224 by default


def test_rejects_configs_without_sgformer(tmp_path):
    config_path = str(tmp_path / 'resnet.py')
    with open(config_path, 'w') as f:
        f.write('model = dict(type="ImageClassifier", backbone=dict(type="ResNet", depth=18))\n')
    with pytest.raises(ValueError, match='SGFormer'):
        load_tool().build_backbone(Config.fromfile(config_path))
