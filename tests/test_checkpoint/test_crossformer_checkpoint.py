"""Loading released CrossFormer / CrossFormer++ checkpoints, synthesized from the
key lists of the released files (``tests/fixtures/keys``: name TAB shape)."""
import argparse
import importlib.util
import os.path as osp
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope

from mmvit_backbones.checkpoint import CheckpointMismatchError, to_classifier_state_dict
from mmvit_backbones.models.backbones import CrossFormer, CrossFormerPP, convert_crossformer_state_dict
from mmvit_backbones.models.backbones.crossformer import CLASSIFICATION_GEOMETRY

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
KEYS = osp.join(ROOT, 'tests', 'fixtures', 'keys')


def read_key_list(name):
    entries = []
    with open(osp.join(KEYS, name + '.txt')) as f:
        for line in f:
            key, shape = line.rstrip('\n').split('\t')
            entries.append((key, tuple(int(s) for s in shape.strip('()').split(',') if s.strip())))
    return entries


def synthesize(name, seed=0):
    """Random tensors with the released names and shapes (index buffers as int64)."""
    gen = torch.Generator().manual_seed(seed)
    state_dict = OrderedDict()
    for key, shape in read_key_list(name):
        if key.endswith('relative_position_index'):
            state_dict[key] = torch.randint(0, 100, shape, generator=gen)
        else:
            state_dict[key] = torch.randn(shape, generator=gen)
    return state_dict


def released_classification_file(tmp_path, name):
    """The released ImageNet layout: weights under 'model', plus training state
    and a pickled config object, as the authors' files have."""
    path = str(tmp_path / f'{name}.pth')
    torch.save({'model': synthesize(name), 'epoch': 299, 'max_accuracy': 82.5,
                'config': argparse.Namespace(MODEL='crossformer')}, path)
    return path


def backbone_only(state_dict):
    return OrderedDict((k, v) for k, v in state_dict.items() if not k.startswith(('norm.', 'head.')))


def released_dense_file(tmp_path, kind):
    """A whole mmdet 2.x (Mask R-CNN) or mmseg 0.x (UPerNet) model of the 2021
    code: backbone keys (with its persistent buffers) under 'backbone.'."""
    backbone = backbone_only(synthesize('crossformer_s_v1_release'))
    state_dict = OrderedDict(('backbone.' + k, v) for k, v in backbone.items())
    if kind == 'det':
        state_dict['neck.lateral_convs.0.conv.weight'] = torch.randn(256, 96, 1, 1)
        state_dict['rpn_head.rpn_conv.weight'] = torch.randn(256, 256, 3, 3)
        state_dict['roi_head.bbox_head.fc_cls.weight'] = torch.randn(81, 1024)
        meta = dict(mmdet_version='2.8.0', CLASSES=('person', ))
    else:
        state_dict['decode_head.conv_seg.weight'] = torch.randn(150, 512, 1, 1)
        state_dict['auxiliary_head.conv_seg.weight'] = torch.randn(150, 256, 1, 1)
        meta = dict(mmseg_version='0.12.0', CLASSES=('wall', ))
    path = str(tmp_path / f'{kind}.pth')
    torch.save({'meta': meta, 'state_dict': state_dict, 'optimizer': {}}, path)
    return path, backbone


def assert_loaded(model, expected):
    """Every tensor of ``model`` equals the checkpoint's."""
    own = model.state_dict()
    assert set(own) <= set(expected)
    for key, value in own.items():
        assert torch.equal(value, expected[key]), key


def load_converter():
    path = osp.join(ROOT, 'tools', 'model_converters', 'crossformer2mmvit.py')
    spec = importlib.util.spec_from_file_location('crossformer2mmvit', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('cls, name', [(CrossFormer, 'crossformer_s'), (CrossFormerPP, 'crossformerpp_s')])
def test_key_layout_is_the_reference_layout(cls, name):
    """This project's format is the reference's: same names, shapes and order."""
    with torch.device('meta'):
        model = cls(arch='s', out_indices=(3, ), final_norm=True)
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert ours == [(k, s) for k, s in read_key_list(name) if not k.startswith('head.')]


@pytest.mark.parametrize('cls, name', [
    (CrossFormer, 'crossformer_s'),  # main-branch file
    (CrossFormer, 'crossformer_s_v1_release'),  # old-branch file with persistent DPB buffers
    (CrossFormerPP, 'crossformerpp_s'),
])
def test_loads_released_classification_checkpoint(tmp_path, cls, name):
    path = released_classification_file(tmp_path, name)
    model = cls(arch='s', init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()  # strict: any missing / unexpected / mis-shaped key would raise
    assert_loaded(model, synthesize(name))


@pytest.mark.parametrize('kind', ['det', 'seg'])
def test_loads_released_v1_dense_checkpoint(tmp_path, kind):
    path, backbone = released_dense_file(tmp_path, kind)
    model = CrossFormer(arch='s', lda_version=1, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    assert_loaded(model, backbone)


def test_converter_cli_and_converted_files_load(tmp_path):
    converter = load_converter()
    src = released_classification_file(tmp_path, 'crossformerpp_s')
    expected = convert_crossformer_state_dict(synthesize('crossformerpp_s'))
    assert not any(k.endswith(('attn.biases', 'relative_position_index')) for k in expected)

    dst = str(tmp_path / 'converted.pth')
    converter.main([src, dst])
    converted = torch.load(dst, weights_only=True)['state_dict']
    assert list(converted) == list(expected)
    model = CrossFormerPP(arch='s', init_cfg=dict(type='Pretrained', checkpoint=dst))
    model.init_weights()
    assert_loaded(model, expected)

    classifier_dst = str(tmp_path / 'classifier.pth')
    converter.main([src, classifier_dst, '--classifier'])
    classifier_sd = torch.load(classifier_dst, weights_only=True)['state_dict']
    assert 'head.fc.weight' in classifier_sd and 'backbone.norm.weight' in classifier_sd
    # The classifier layout loads back into a bare backbone too.
    model = CrossFormerPP(arch='s', init_cfg=dict(type='Pretrained', checkpoint=classifier_dst))
    model.init_weights()
    assert_loaded(model, expected)
    # ... and converting it again gives the same weights back.
    again = convert_crossformer_state_dict(classifier_sd)
    assert list(again) == list(expected) and all(torch.equal(again[k], expected[k]) for k in expected)


def test_v1_dense_checkpoint_converts_offline(tmp_path):
    path, backbone = released_dense_file(tmp_path, 'det')
    dst = str(tmp_path / 'det_backbone.pth')
    load_converter().main([path, dst])
    converted = torch.load(dst, weights_only=True)['state_dict']
    assert list(converted) == [k for k in backbone if not k.endswith(('attn.biases', 'relative_position_index'))]


@pytest.mark.parametrize('corruption, key', [
    ('missing', 'layers.0.blocks.1.attn.qkv.weight'),
    ('unexpected', 'layers.0.blocks.0.attn.extra_scale'),
    ('mis-shaped', 'layers.1.blocks.0.mlp.fc1.weight'),
])
def test_corrupted_checkpoint_fails_loudly(tmp_path, corruption, key):
    state_dict = synthesize('crossformer_s')
    if corruption == 'missing':
        del state_dict[key]
    elif corruption == 'unexpected':
        state_dict[key] = torch.ones(1)
    else:
        state_dict[key] = state_dict[key].t().contiguous()
    path = str(tmp_path / 'corrupted.pth')
    torch.save({'model': state_dict}, path)
    with pytest.raises(CheckpointMismatchError, match=f'{corruption}.*{key}'):
        CrossFormer(arch='s', init_cfg=dict(type='Pretrained', checkpoint=path)).init_weights()
    # strict=False opts out and loads everything that fits.
    model = CrossFormer(arch='s', init_cfg=dict(type='Pretrained', checkpoint=path, strict=False))
    model.init_weights()
    assert torch.equal(model.layers[2].blocks[3].attn.qkv.weight, state_dict['layers.2.blocks.3.attn.qkv.weight'])


def test_wrong_variant_is_reported(tmp_path):
    path = released_classification_file(tmp_path, 'crossformerpp_s')
    with pytest.raises(CheckpointMismatchError, match='patch_embed.projs.0.weight'):
        CrossFormer(arch='s', init_cfg=dict(type='Pretrained', checkpoint=path)).init_weights()


def test_out_norms_are_not_required_in_released_files(tmp_path):
    path = released_classification_file(tmp_path, 'crossformer_s')
    model = CrossFormer(arch='s', out_indices=(1, 2), out_norms=True,
                        init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    assert torch.all(model.norm1.weight == 1) and torch.all(model.norm2.bias == 0)
    released = synthesize('crossformer_s')
    assert torch.equal(model.layers[0].blocks[0].norm1.weight, released['layers.0.blocks.0.norm1.weight'])


def test_mmpretrain_classifier_loads_released_weights():
    """ImageClassifier(CrossFormer++-S + final norm, GAP, linear head) takes the
    released state dict and computes head(mean(norm(stage 4 tokens)))."""
    from mmpretrain.registry import MODELS
    geometry = CLASSIFICATION_GEOMETRY['CrossFormerPP']
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(type='CrossFormerPP', arch='s', out_indices=(3, ), final_norm=True, **geometry),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=512))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = MODELS.build(cfg).eval()
    assert sum(p.numel() for p in classifier.parameters()) == 23_325_340  # spec §3.2
    released = synthesize('crossformerpp_s', seed=1)
    classifier.load_state_dict(to_classifier_state_dict(convert_crossformer_state_dict(released)), strict=True)

    backbone = CrossFormerPP(arch='s', out_indices=(3, ), **geometry).eval()
    backbone.load_state_dict(backbone_only(released), strict=True)
    img = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = classifier(img, mode='tensor')
        tokens = backbone(img)[0].flatten(2).transpose(1, 2)
        tokens = F.layer_norm(tokens, (512, ), released['norm.weight'], released['norm.bias'], 1e-5)
        expected = F.linear(tokens.mean(1), released['head.weight'], released['head.bias'])
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-4)  # logits are ~20 here
