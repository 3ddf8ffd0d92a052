import pytest
import torch
from torch import nn

from mmvit_backbones.models.backbones.base import MultiScaleBackbone, parse_out_indices, resolve_arch

ZOO = {'s': dict(depths=[1, 1]), 'b': dict(depths=[2, 2])}


def test_resolve_arch_names_the_valid_choices():
    assert resolve_arch('S', ZOO, ['depths'], 'Net') == dict(depths=[1, 1])
    with pytest.raises(ValueError, match=r"unknown arch 'x'; choose one of \['b', 's'\]"):
        resolve_arch('x', ZOO, ['depths'], 'Net')
    with pytest.raises(ValueError, match=r"missing \['depths'\]"):
        resolve_arch(dict(heads=1), ZOO, ['depths'], 'Net')
    with pytest.raises(TypeError, match='int'):
        resolve_arch(3, ZOO, ['depths'], 'Net')


def test_parse_out_indices():
    assert parse_out_indices((3, -4), 4, 'Net') == [0, 3]
    assert parse_out_indices(2, 4, 'Net') == [2]
    with pytest.raises(ValueError, match='out of range'):
        parse_out_indices((4, ), 4, 'Net')
    with pytest.raises(ValueError, match='repeats'):
        parse_out_indices((1, -3), 4, 'Net')
    with pytest.raises(TypeError):
        parse_out_indices('0', 4, 'Net')


class TwoStage(MultiScaleBackbone):
    num_stages = 2

    def __init__(self, **kwargs):
        kwargs.setdefault('out_indices', (0, 1))
        super().__init__(**kwargs)
        self.stem = nn.Conv2d(3, 4, 1)
        self.stages = nn.ModuleList([nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)) for _ in range(2)])

    def stem_modules(self):
        return [self.stem]

    def stage_modules(self, index):
        return [self.stages[index]]


def test_frozen_stages_and_norm_eval_survive_train():
    net = TwoStage(frozen_stages=1, norm_eval=True)
    net.train()
    assert not net.stem.training and not net.stages[0].training and net.stages[1].training
    assert not any(p.requires_grad for p in net.stem.parameters())
    assert not any(p.requires_grad for p in net.stages[0].parameters())
    assert all(p.requires_grad for p in net.stages[1].parameters())
    assert not net.stages[1][1].training  # norm_eval


def test_constructor_and_input_errors():
    with pytest.raises(ValueError, match='frozen_stages'):
        TwoStage(frozen_stages=3)
    with pytest.raises(ValueError, match='in_channels'):
        TwoStage(in_channels=0)
    with pytest.raises(ValueError, match=r"with_cp must be False, True or 'selective', got 'full'"):
        TwoStage(with_cp='full')
    net = TwoStage()
    with pytest.raises(ValueError, match=r'4-D .* got shape \(3, 8, 8\)'):
        net.check_input(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match='3 input channels'):
        net.check_input(torch.zeros(1, 1, 8, 8))
    with pytest.raises(TypeError):
        net.check_input([1])


def test_pretrained_init_cfg_is_validated(tmp_path):
    with pytest.raises(ValueError, match='needs a checkpoint'):
        TwoStage(init_cfg=dict(type='Pretrained')).init_weights()
    with pytest.raises(ValueError, match=r"\['map_location'\]"):
        TwoStage(init_cfg=dict(type='Pretrained', checkpoint='x', map_location='cpu')).init_weights()
    source = TwoStage()
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in source.state_dict().items()}}, path)
    loaded = TwoStage(init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    loaded.init_weights()
    torch.testing.assert_close(loaded.stem.weight, source.stem.weight)
