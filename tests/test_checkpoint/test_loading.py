import argparse
import pickle
from collections import OrderedDict

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
from torch import nn

import mmvit_backbones  # noqa: F401  (installs the trusted local loader where mmengine needs it)
from mmvit_backbones import compat
from mmvit_backbones.checkpoint import (
    CheckpointMismatchError,
    convert_checkpoint_file,
    extract_state_dict,
    fill_missing_output_norms,
    from_whole_model_state_dict,
    load_state_dict_loudly,
    load_trusted_local,
    to_classifier_state_dict,
)


class Tiny(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.norm = nn.LayerNorm(4)


def test_local_checkpoints_with_python_objects_load_through_mmengine(tmp_path):
    # The authors' files pickle argparse Namespaces; torch >= 2.6 refuses them with weights_only=True.
    path = tmp_path / 'released.pth'
    torch.save({'args': argparse.Namespace(lr=1.0), 'model': Tiny().state_dict()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    loaded = _load_checkpoint(str(path), map_location='cpu')  # what load_from / resume / Pretrained use
    assert loaded['args'].lr == 1.0 and 'conv.weight' in loaded['model']


def test_weights_only_switch_refuses_python_objects(tmp_path, monkeypatch):
    path = tmp_path / 'released.pth'
    torch.save({'args': argparse.Namespace(lr=1.0)}, path)
    monkeypatch.setenv('MMVIT_WEIGHTS_ONLY', '1')
    with pytest.raises(pickle.UnpicklingError, match='MMVIT_WEIGHTS_ONLY'):
        load_trusted_local(str(path))
    tensors_only = tmp_path / 'plain.pth'
    torch.save({'w': torch.ones(2)}, tensors_only)
    assert torch.equal(load_trusted_local(str(tensors_only))['w'], torch.ones(2))


@pytest.mark.skipif(compat.STATUS.get('trusted_local_loader') != 'applied',
                    reason="mmengine loads trusted local files itself (the OneDL fork): its loader is kept")
def test_only_the_local_scheme_is_replaced():
    assert CheckpointLoader._get_checkpoint_loader('/some/file.pth') is load_trusted_local
    assert CheckpointLoader._get_checkpoint_loader('https://host/file.pth') is not load_trusted_local


def test_missing_file_is_named():
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_trusted_local('/tmp/does/not/exist/nope.pth')


@pytest.mark.parametrize('container', ['state_dict_ema', 'state_dict', 'model', None])
def test_extract_state_dict_finds_weights_and_strips_module(container):
    weights = OrderedDict([('module.conv.weight', torch.ones(1))])
    checkpoint = weights if container is None else {container: weights, 'epoch': 3}
    assert list(extract_state_dict(checkpoint)) == ['conv.weight']


def test_extract_state_dict_prefers_ema_and_applies_prefix():
    checkpoint = {'state_dict': {'a.w': torch.zeros(1)}, 'state_dict_ema': {'a.w': torch.ones(1), 'b.w': torch.ones(1)}}
    assert torch.equal(extract_state_dict(checkpoint)['a.w'], torch.ones(1))
    assert list(extract_state_dict(checkpoint, prefix='b.')) == ['w']
    with pytest.raises(CheckpointMismatchError, match="prefix 'c.'"):
        extract_state_dict(checkpoint, prefix='c.')
    with pytest.raises(TypeError, match='list'):
        extract_state_dict([1, 2])


def test_whole_model_prefix_keeps_the_backbone_and_the_linear_head():
    state = {'backbone.a': 1, 'neck.b': 2, 'backbone.c': 3, 'head.fc.weight': 4, 'decode_head.conv': 5}
    assert list(from_whole_model_state_dict(state).items()) == [('a', 1), ('c', 3), ('head.weight', 4)]
    assert from_whole_model_state_dict({'a': 1}) == {'a': 1}


def test_loud_loading_names_every_problem():
    model = Tiny()
    state = Tiny().state_dict()
    del state['norm.bias']
    state['extra.weight'] = torch.zeros(1)
    state['conv.weight'] = torch.zeros(5, 3, 1, 1)
    with pytest.raises(CheckpointMismatchError) as err:
        load_state_dict_loudly(model, state)
    message = str(err.value)
    assert 'norm.bias' in message and 'extra.weight' in message
    assert 'conv.weight [5, 3, 1, 1] vs [4, 3, 1, 1]' in message


def test_loud_loading_opt_out_loads_what_fits_and_expected_extras_pass():
    model, source = Tiny(), Tiny()
    state = source.state_dict()
    state['head.weight'] = torch.zeros(2)
    report = load_state_dict_loudly(model, state, expected_extra=['head.*'])
    assert report['ignored'] == ['head.weight'] and not report['unexpected']
    torch.testing.assert_close(model.conv.weight, source.conv.weight)

    del state['norm.weight']
    fresh = Tiny()
    report = load_state_dict_loudly(fresh, state, expected_extra=['head.*'], strict=False)
    assert report['missing'] == ['norm.weight']
    torch.testing.assert_close(fresh.norm.bias, source.norm.bias)


class TwoNorms(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.norm0 = nn.LayerNorm(4)
        self.norm1 = nn.LayerNorm(4)


def test_fill_missing_output_norms_takes_absent_norms_only():
    model, source = TwoNorms(), TwoNorms()
    for norm in (source.norm0, source.norm1):
        nn.init.normal_(norm.weight)
    checkpoint = OrderedDict((k, v) for k, v in source.state_dict().items() if not k.startswith('norm0.'))
    # norm0 is absent: it keeps the model's own tensors; names the model lacks are skipped.
    assert fill_missing_output_norms(model, checkpoint, ['norm0', 'norm1', 'norm7']) == ['norm0']
    assert list(checkpoint)[-2:] == ['norm0.weight', 'norm0.bias']
    load_state_dict_loudly(model, checkpoint)
    torch.testing.assert_close(model.norm0.weight, torch.ones(4))
    torch.testing.assert_close(model.norm1.weight, source.norm1.weight)
    # A norm the checkpoint has in part is not completed: the loader still names the missing key.
    del checkpoint['norm1.bias']
    assert fill_missing_output_norms(TwoNorms(), checkpoint, ['norm0', 'norm1']) == []
    with pytest.raises(CheckpointMismatchError, match=r'missing keys \(1\): norm1\.bias'):
        load_state_dict_loudly(TwoNorms(), checkpoint)


def test_classifier_layout_and_offline_conversion(tmp_path):
    state = OrderedDict([('conv.weight', torch.ones(1)), ('head.weight', torch.ones(2)), ('head.bias', torch.ones(2))])
    assert list(to_classifier_state_dict(state)) == ['backbone.conv.weight', 'head.fc.weight', 'head.fc.bias']
    src, dst = tmp_path / 'src.pth', tmp_path / 'out' / 'dst.pth'
    torch.save({'model': state, 'config': argparse.Namespace()}, src)
    convert_checkpoint_file(str(src), str(dst), lambda sd: OrderedDict((k.upper(), v) for k, v in sd.items()))
    converted = torch.load(dst, weights_only=True)  # tensors only
    assert list(converted['state_dict']) == ['CONV.WEIGHT', 'HEAD.WEIGHT', 'HEAD.BIAS']
