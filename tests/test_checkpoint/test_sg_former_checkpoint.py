"""Loading SG-Former checkpoints: the released training files (synthesized from
the spec's key lists, in the timm CheckpointSaver layout), this project's files,
whole models, loud failures, the offline converter and the mmpretrain classifier."""
import argparse
import importlib.util
import os.path as osp
from collections import OrderedDict

import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint

from mmvit_backbones.checkpoint import CheckpointMismatchError, load_pretrained, to_classifier_state_dict
from mmvit_backbones.models.backbones import SGFormer
from mmvit_backbones.models.backbones.sg_former import convert_sgformer_state_dict, resize_pos_embed

ROOT = osp.join(osp.dirname(__file__), '..', '..')
KEYS = osp.join(ROOT, 'tests', 'fixtures', 'keys')


def read_keys(arch):
    entries = []
    with open(osp.join(KEYS, f'sg_former_{arch}.txt')) as f:
        for line in f:
            name, shape = line.rstrip('\n').split('\t')
            entries.append((name, tuple(int(s) for s in shape.strip('()').split(',') if s.strip())))
    return entries


@pytest.fixture(scope='module')
def weights():
    """Random weights named and shaped as the released SG-Former-S."""
    generator = torch.Generator().manual_seed(0)
    return OrderedDict((name, torch.randn(shape, generator=generator) * 0.1) for name, shape in read_keys('s'))


def converter():
    spec = importlib.util.spec_from_file_location('sgformer2mmvit',
                                                  osp.join(ROOT, 'tools', 'model_converters', 'sgformer2mmvit.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def released(tmp_path_factory, weights):
    """A released-style training file: timm CheckpointSaver dict, EMA and raw weights differ."""
    ema, raw = weights, OrderedDict((k, v + 1) for k, v in weights.items())
    path = str(tmp_path_factory.mktemp('sgformer') / 'sgformer_s.pth.tar')
    torch.save(
        dict(epoch=299, arch='sgformer_s', state_dict=raw, optimizer=dict(state={}, param_groups=[]), version=2,
             args=argparse.Namespace(model='sgformer_s', drop_path=0.1, model_ema=True),
             amp_scaler=dict(scale=65536.), state_dict_ema=ema, metric=83.2), path)
    return path, ema, raw


def assert_loaded(model, expected):
    own = model.state_dict()
    for key, value in own.items():
        assert torch.equal(value, expected[key]), key


def test_released_training_file_loads_ema_weights_with_nothing_missing(released):
    path, ema, _ = released
    model = SGFormer(arch='s')
    report = load_pretrained(model, path, model.convert_state_dict, model.expected_extra_keys)
    assert report['missing'] == [] and report['unexpected'] == [] and report['mismatched'] == []
    assert report['ignored'] == ['head.weight', 'head.bias']

    model = SGFormer(arch='s', init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    assert_loaded(model, ema)


@pytest.mark.parametrize('layout', ['state_dict', 'bare'])
def test_files_without_ema_load(tmp_path, weights, layout):
    path = str(tmp_path / 'weights.pth')
    torch.save(weights if layout == 'bare' else dict(state_dict=weights), path)
    model = SGFormer(arch='s', init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    assert_loaded(model, weights)


@pytest.fixture(scope='module')
def converted(tmp_path_factory, released):
    """The offline converter's backbone and classifier files of the released file."""
    folder = tmp_path_factory.mktemp('converted')
    backbone_file, classifier_file = str(folder / 'backbone.pth'), str(folder / 'classifier.pth')
    converter().main([released[0], backbone_file])
    converter().main([released[0], classifier_file, '--classifier'])
    return backbone_file, classifier_file


def test_converted_and_whole_model_files_load(released, converted, tmp_path):
    ema = released[1]
    backbone_file, classifier_file = converted
    backbone_keys = torch.load(backbone_file, weights_only=True)['state_dict']
    classifier_keys = torch.load(classifier_file, weights_only=True)['state_dict']
    assert list(backbone_keys) == list(ema)  # this project's format is the released one
    assert list(classifier_keys) == ['backbone.' + k for k in ema if not k.startswith('head.')] + [
        'head.fc.weight', 'head.fc.bias']
    detector_file = str(tmp_path / 'detector.pth')
    torch.save(dict(state_dict={**{'backbone.' + k: v for k, v in ema.items() if not k.startswith('head.')},
                                'neck.lateral_convs.0.conv.weight': torch.zeros(1)}), detector_file)
    for file in (backbone_file, classifier_file, detector_file):
        model = SGFormer(arch='s', init_cfg=dict(type='Pretrained', checkpoint=file))
        model.init_weights()
        assert_loaded(model, ema)
    # A classifier file converted back gives the released layout again.
    assert list(convert_sgformer_state_dict(classifier_keys)) == list(ema)


@pytest.mark.parametrize('corruption,key', [
    ('missing', 'block3.1.attn.f1.weight'),
    ('extra', 'block3.16.attn.q.weight'),
    ('shape', 'block1.1.attn.f2.weight'),
])
def test_corrupted_checkpoints_fail_naming_the_key(tmp_path, weights, corruption, key):
    weights = OrderedDict(weights)
    if corruption == 'missing':
        del weights[key]
    elif corruption == 'extra':
        weights[key] = torch.zeros(256, 256)
    else:
        weights[key] = torch.zeros(1, 55)
    path = str(tmp_path / 'corrupted.pth')
    torch.save(dict(state_dict_ema=weights), path)
    model = SGFormer(arch='s', init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointMismatchError, match=key.replace('.', r'\.')):
        model.init_weights()
    model.init_cfg = dict(type='Pretrained', checkpoint=path, strict=False)  # the user opts out
    model.init_weights()
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items() if k != key and k in loaded)


def test_position_embedding_of_another_grid_is_resized(tmp_path, weights):
    weights = OrderedDict(weights)
    weights['pos_embed'] = torch.randn(1, 96 * 96, 64)  # a 384x384 fine-tune
    path = str(tmp_path / 'sgformer_s_384.pth')
    torch.save(dict(state_dict=weights), path)
    model = SGFormer(arch='s', init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    torch.testing.assert_close(model.pos_embed.data, resize_pos_embed(weights['pos_embed'], (96, 96), (56, 56)))
    native = SGFormer(arch='s', pretrain_img_size=384, init_cfg=dict(type='Pretrained', checkpoint=path))
    native.init_weights()
    assert torch.equal(native.pos_embed.data, weights['pos_embed'])


def classifier_cfg():
    return dict(
        type='ImageClassifier',
        backbone=dict(type='SGFormer', arch='s', out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=512))


def test_mmpretrain_classifier_loads_released_weights_and_computes_backbone_plus_head(released, converted):
    from mmpretrain.registry import MODELS
    ema = released[1]
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(classifier_cfg()).eval()
    missing, unexpected = model.load_state_dict(to_classifier_state_dict(convert_sgformer_state_dict(ema)))
    assert missing == [] and unexpected == []
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        logits = model(x, mode='tensor')
        features = model.backbone(x)[-1]
    expected = features.mean((2, 3)) @ ema['head.weight'].t() + ema['head.bias']
    torch.testing.assert_close(logits, expected)

    # The converter's classifier file loads the same way as `load_from` does.
    for param in model.parameters():
        param.data.zero_()
    load_checkpoint(model, converted[1], strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model(x, mode='tensor'), logits)
