"""Pale Transformer checkpoints: this project's documented layout loads back, loudly.

No reference weights were ever released, so the only files are the ones this
project trains. ``docs/keys/pale_t.txt`` documents their layout (name TAB shape,
Pale-T backbone with all four output norms); the fake checkpoints below are
synthesised from that file, never from the model.
"""
import ast
import logging
import os.path as osp
from collections import OrderedDict

import pytest
import torch

import mmvit_backbones  # noqa: F401  (registers the models)
from mmvit_backbones.checkpoint import CheckpointMismatchError, load_pretrained, to_classifier_state_dict
from mmvit_backbones.models.backbones import PaleTransformer

KEY_FILE = osp.join(osp.dirname(__file__), '..', '..', 'docs', 'keys', 'pale_t.txt')
# The layout before issue 14: Q, K and V as three separable convolution modules.
OLD_KEY_FILE = osp.join(osp.dirname(__file__), '..', 'fixtures', 'keys', 'pale_t_separate_qkv.txt')


def documented_shapes(key_file=KEY_FILE) -> 'OrderedDict[str, tuple]':
    shapes = OrderedDict()
    with open(key_file) as f:
        for line in f:
            name, shape = line.rstrip('\n').split('\t')
            shapes[name] = ast.literal_eval(shape)
    return shapes


def synthesize(drop_norms=(), key_file=KEY_FILE) -> 'OrderedDict[str, torch.Tensor]':
    torch.manual_seed(0)
    state_dict = OrderedDict()
    for name, shape in documented_shapes(key_file).items():
        if name.split('.')[0] in drop_norms:
            continue
        if name.endswith('num_batches_tracked'):
            state_dict[name] = torch.tensor(7)
        elif name.endswith('running_var'):
            state_dict[name] = torch.rand(shape) + 0.5
        else:
            state_dict[name] = torch.randn(shape)
    return state_dict


def save(tmp_path, state_dict, name='pale.pth'):
    path = str(tmp_path / name)
    # mmengine's checkpoint layout (what the Runner writes).
    torch.save({'meta': {'epoch': 3}, 'state_dict': state_dict, 'optimizer': {}}, path)
    return path


def assert_loaded(model, state_dict, prefix=''):
    own = model.state_dict()
    for name, value in state_dict.items():
        if name.startswith(prefix):
            assert torch.equal(own[name[len(prefix):]], value), name


def test_documented_layout_of_a_block():
    shapes = documented_shapes()
    block = {k[len('stages.0.blocks.0.'):]: v for k, v in shapes.items() if k.startswith('stages.0.blocks.0.')}
    separable = {
        'depthwise.weight': (192, 1, 3, 3),
        'norm.weight': (192, ),
        'norm.bias': (192, ),
        'norm.running_mean': (192, ),
        'norm.running_var': (192, ),
        'norm.num_batches_tracked': (),
        'pointwise.weight': (192, 64, 1, 1),
        'pointwise.bias': (192, ),
    }
    expected = {
        'cpe.weight': (64, 1, 3, 3), 'cpe.bias': (64, ),
        'norm1.weight': (64, ), 'norm1.bias': (64, ),
        'attn.proj.weight': (64, 64), 'attn.proj.bias': (64, ),
        'norm2.weight': (64, ), 'norm2.bias': (64, ),
        'mlp.fc1.weight': (256, 64), 'mlp.fc1.bias': (256, ),
        'mlp.fc2.weight': (64, 256), 'mlp.fc2.bias': (64, ),
    }  # yapf: disable
    expected.update({f'attn.qkv.{k}': v for k, v in separable.items()})
    assert block == expected
    assert shapes['stages.0.patch_merging.projection.weight'] == (64, 3, 7, 7)
    assert shapes['stages.3.patch_merging.projection.weight'] == (512, 256, 3, 3)
    assert [f'norm{i}.weight' in shapes for i in range(4)] == [True] * 4
    assert sum('.blocks.' in k and k.endswith('cpe.weight') for k in shapes) == 22


def test_model_matches_documented_layout():
    own = PaleTransformer('t').state_dict()
    assert OrderedDict((k, tuple(v.shape)) for k, v in own.items()) == documented_shapes()


def test_backbone_checkpoint_loads_through_init_cfg(tmp_path):
    state_dict = synthesize()
    path = save(tmp_path, state_dict)
    model = PaleTransformer('t', init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    assert_loaded(model, state_dict)
    report = load_pretrained(model, path, model.convert_state_dict, model.expected_extra_keys)
    assert report == dict(missing=[], unexpected=[], mismatched=[], ignored=[])


def test_whole_detector_checkpoint(tmp_path):
    state_dict = synthesize()
    detector = OrderedDict(('backbone.' + k, v) for k, v in state_dict.items())
    detector['neck.lateral_convs.0.conv.weight'] = torch.randn(256, 64, 1, 1)
    detector['rpn_head.rpn_cls.weight'] = torch.randn(3, 256, 1, 1)
    path = save(tmp_path, detector)
    model = PaleTransformer('t', init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    assert_loaded(model, detector, prefix='backbone.')


def test_classifier_checkpoint_into_dense_backbone(tmp_path):
    # An ImageNet classifier keeps norm3 only: norm0-2 keep their initialisation.
    state_dict = synthesize(drop_norms=('norm0', 'norm1', 'norm2'))
    state_dict['head.weight'], state_dict['head.bias'] = torch.randn(1000, 512), torch.randn(1000)
    path = save(tmp_path, to_classifier_state_dict(state_dict))
    model = PaleTransformer('t')
    report = load_pretrained(model, path, model.prepare_state_dict, model.expected_extra_keys)
    # The classifier's head.fc.* becomes head.* (one whole-model rule for every family), dropped as expected.
    assert report == dict(missing=[], unexpected=[], mismatched=[], ignored=['head.weight', 'head.bias'])
    assert_loaded(model, {k: v for k, v in state_dict.items() if not k.startswith('head.')})
    assert torch.equal(model.norm0.weight, torch.ones(64)) and torch.equal(model.norm2.bias, torch.zeros(256))


def test_dense_checkpoint_into_classifier_backbone(tmp_path):
    state_dict = synthesize()
    model = PaleTransformer('t', out_indices=(3, ))
    report = load_pretrained(model, save(tmp_path, state_dict), model.convert_state_dict,
                             model.expected_extra_keys)
    assert sorted(report['ignored']) == sorted(f'norm{i}.{p}' for i in range(3) for p in ('weight', 'bias'))
    assert not report['missing'] and not report['unexpected'] and not report['mismatched']


@pytest.mark.parametrize('corruption', ['missing', 'unexpected', 'shape'])
def test_corrupted_checkpoint_is_named(tmp_path, corruption):
    state_dict = synthesize()
    key = 'stages.2.blocks.5.attn.qkv.pointwise.weight'
    if corruption == 'missing':
        del state_dict[key]
    elif corruption == 'unexpected':
        key = 'stages.2.blocks.5.attn.relative_position_bias_table'
        state_dict[key] = torch.zeros(3)
    else:
        state_dict[key] = torch.zeros(256, 256)
    path = save(tmp_path, state_dict)
    model = PaleTransformer('t', init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointMismatchError, match=key.replace('.', r'\.')):
        model.init_weights()
    # strict=False loads everything that fits (and logs the problems).
    model = PaleTransformer('t', init_cfg=dict(type='Pretrained', checkpoint=path, strict=False))
    model.init_weights()
    assert_loaded(model, {k: v for k, v in state_dict.items() if k != key})


def test_mmpretrain_classifier(tmp_path):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(type='PaleTransformer', arch='t', out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=512))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = MODELS.build(cfg).eval()
    state_dict = synthesize(drop_norms=('norm0', 'norm1', 'norm2'))
    state_dict['head.weight'], state_dict['head.bias'] = torch.randn(1000, 512), torch.randn(1000)
    converted = to_classifier_state_dict(classifier.backbone.convert_state_dict(state_dict))
    result = classifier.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        logits = classifier(x, mode='tensor')
        # By hand: last stage, its LayerNorm (inside the backbone), mean over positions, linear.
        pooled = classifier.backbone(x)[-1].mean(dim=(2, 3))
        expected = pooled @ state_dict['head.weight'].t() + state_dict['head.bias']
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def test_old_separate_qkv_layout_loads_converted_and_loudly(tmp_path, monkeypatch):
    from mmvit_backbones.models.backbones import pale_transformer
    warnings = []
    monkeypatch.setattr(pale_transformer, 'print_log', lambda msg, **kw: warnings.append((msg, kw.get('level'))))
    old = synthesize(key_file=OLD_KEY_FILE)
    path = save(tmp_path, OrderedDict(('backbone.' + k, v) for k, v in old.items()))
    model = PaleTransformer('t', init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    assert [level for msg, level in warnings if 'to_q/to_k/to_v' in msg] == [logging.WARNING]
    report = load_pretrained(model, path, model.convert_state_dict, model.expected_extra_keys)
    assert report == dict(missing=[], unexpected=[], mismatched=[], ignored=[])
    own = model.state_dict()
    for prefix in ('stages.0.blocks.0.attn', 'stages.2.blocks.15.attn'):
        for new, old_module in (('depthwise.weight', 'depthwise_conv.conv.weight'),
                                ('norm.running_var', 'depthwise_conv.bn.running_var'),
                                ('pointwise.weight', 'pointwise_conv.conv.weight'),
                                ('pointwise.bias', 'pointwise_conv.conv.bias')):
            expected = torch.cat([old[f'{prefix}.to_{n}.{old_module}'] for n in 'qkv'])
            assert torch.equal(own[f'{prefix}.qkv.{new}'], expected)
    assert_loaded(model, {k: v for k, v in old.items() if '.to_' not in k})


def test_old_layout_missing_one_of_qkv_is_named():
    old = synthesize(key_file=OLD_KEY_FILE)
    del old['stages.1.blocks.0.attn.to_v.pointwise_conv.conv.bias']
    with pytest.raises(KeyError, match=r'stages\.1\.blocks\.0\.attn\.to_\{q,k,v\}\.pointwise_conv\.conv\.bias'):
        PaleTransformer('t').convert_state_dict(old)
