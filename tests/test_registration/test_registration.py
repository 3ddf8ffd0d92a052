"""Every backbone builds from mmdet, mmseg and mmpretrain configs under their own default scope."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmvit_backbones  # noqa: F401
from mmvit_backbones.registry import PLUGIN_MODEL_NAMES

# The smallest arch of each type with its stage-1 width.
BACKBONES = {
    'SGFormer': ('s', 64),
    'PaleTransformer': ('t', 64),
    'CrossFormer': ('t', 64),
    'CrossFormerPP': ('s', 64),
}


def library_model(base):
    """The ``model`` of a library's base config, e.g. ``'mmdet::_base_/models/retinanet_r50_fpn.py'``."""
    return Config.fromstring(f'_base_ = [{base!r}]', '.py').model


def small_backbone(type_name):
    arch, _ = BACKBONES[type_name]
    return dict(type=type_name, arch=arch, out_indices=(0, 1, 2, 3))


def build_in_scope(scope, cfg):
    """Build ``cfg`` as the library's tools would: import the plugin, then use the scope's registry."""
    Config(dict(custom_imports=dict(imports=['mmvit_backbones'], allow_failed_imports=False)))
    registry = {
        'mmdet': 'mmdet.registry',
        'mmseg': 'mmseg.registry',
        'mmpretrain': 'mmpretrain.registry',
    }[scope]
    models = __import__(registry, fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return models.build(cfg)


def test_all_backbones_are_registered():
    assert set(BACKBONES) <= set(PLUGIN_MODEL_NAMES)


@pytest.mark.parametrize('type_name', sorted(BACKBONES))
def test_mmdet_builds_a_retinanet(type_name):
    width = BACKBONES[type_name][1]
    cfg = library_model('mmdet::_base_/models/retinanet_r50_fpn.py')
    cfg.backbone = small_backbone(type_name)
    cfg.neck.in_channels = [width * 2**i for i in range(4)]
    cfg.neck.start_level = 1
    detector = build_in_scope('mmdet', cfg)
    assert type(detector.backbone).__name__ == type_name
    detector.eval()
    with torch.no_grad():
        feats = detector.extract_feat(torch.randn(1, 3, 64, 96))
    assert [f.shape[-2:] for f in feats] == [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]


@pytest.mark.parametrize('type_name', sorted(BACKBONES))
def test_mmseg_builds_a_semantic_fpn(type_name):
    width = BACKBONES[type_name][1]
    cfg = library_model('mmseg::_base_/models/fpn_r50.py')
    cfg.pretrained = None
    cfg.backbone = small_backbone(type_name)
    cfg.neck.in_channels = [width * 2**i for i in range(4)]
    cfg.decode_head.norm_cfg = dict(type='BN', requires_grad=True)
    cfg.data_preprocessor = None
    segmentor = build_in_scope('mmseg', cfg)
    assert type(segmentor.backbone).__name__ == type_name
    segmentor.eval()
    with torch.no_grad():
        logits = segmentor._forward(torch.randn(1, 3, 64, 64))
    assert logits.shape == (1, 19, 16, 16)


@pytest.mark.parametrize('type_name', sorted(BACKBONES))
def test_mmpretrain_builds_a_classifier(type_name):
    width = BACKBONES[type_name][1]
    cfg = dict(type='ImageClassifier', backbone=dict(small_backbone(type_name), out_indices=(3, )),
               neck=dict(type='GlobalAveragePooling'),
               head=dict(type='LinearClsHead', num_classes=10, in_channels=width * 8))
    classifier = build_in_scope('mmpretrain', cfg)
    assert type(classifier.backbone).__name__ == type_name
    classifier.eval()
    with torch.no_grad():
        assert classifier(torch.randn(2, 3, 64, 64), mode='tensor').shape == (2, 10)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_unknown_type_error_names_this_plugins_models(scope):
    with pytest.raises(KeyError) as err:
        build_in_scope(scope, dict(type='CrossFormr', arch='s'))
    message = str(err.value)
    assert 'CrossFormr is not in the' in message  # mmengine's own error is kept
    for name in BACKBONES:
        assert name in message
    assert "Did you mean 'CrossFormer'?" in message


def test_unknown_nested_backbone_is_reported_once():
    cfg = library_model('mmdet::_base_/models/retinanet_r50_fpn.py')
    cfg.backbone = dict(type='PaleTransfomer', arch='t')
    with pytest.raises(KeyError) as err:
        build_in_scope('mmdet', cfg)
    assert str(err.value).count('mmvit_backbones provides') == 1
    assert "Did you mean 'PaleTransformer'?" in str(err.value)


def test_hint_is_added_once_through_mmengines_root_registry():
    # The Runner builds with mmengine's root MODELS under the library's default scope: the outer
    # build sees the inner build's error and must not append the hint a second time.
    from mmengine.registry import MODELS

    Config(dict(custom_imports=dict(imports=['mmvit_backbones', 'mmdet.models'], allow_failed_imports=False)))
    cfg = library_model('mmdet::_base_/models/retinanet_r50_fpn.py')
    cfg.backbone = dict(type='CrossFormr', arch='t')
    with DefaultScope.overwrite_default_scope('mmdet'), pytest.raises(KeyError) as err:
        MODELS.build(cfg)
    assert str(err.value).count('mmvit_backbones provides') == 1
    assert "Did you mean 'CrossFormer'?" in str(err.value)


@pytest.mark.parametrize('scope,field,typo', [('mmseg', 'decode_head', 'FPNHeadd'),
                                               ('mmdet', 'neck', 'FPNN')])
def test_typos_in_the_libraries_own_types_get_no_plugin_hint(scope, field, typo):
    base = {'mmseg': 'mmseg::_base_/models/fpn_r50.py', 'mmdet': 'mmdet::_base_/models/retinanet_r50_fpn.py'}
    cfg = library_model(base[scope])
    if scope == 'mmseg':
        cfg.pretrained = None
        cfg.data_preprocessor = None
    cfg.backbone = small_backbone('CrossFormer')
    cfg[field].type = typo
    with pytest.raises(KeyError) as err:
        build_in_scope(scope, cfg)
    assert f'{typo} is not in the' in str(err.value)
    assert 'mmvit_backbones provides' not in str(err.value)
