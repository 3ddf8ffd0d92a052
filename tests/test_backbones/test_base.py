import re

import pytest
import torch
from torch import nn

from mmvit_backbones.models.backbones.base import (
    MultiScaleBackbone,
    check_per_stage,
    check_rate,
    check_type,
    parse_out_indices,
    resolve_arch,
)

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
    with pytest.raises(TypeError):
        parse_out_indices(True, 4, 'Net')
    with pytest.raises(ValueError, match=r'Net: out_indices is empty; .* \(valid: -4\.\.3\)'):
        parse_out_indices((), 4, 'Net')


def test_check_rate():
    assert check_rate(0, 'rate', 'Net') == 0 and check_rate(0.5, 'rate', 'Net') == 0.5
    assert check_rate(8, 'ratio', 'Net', high=None) == 8
    for bad in ('0.1', True, None, [0.1]):
        with pytest.raises(TypeError, match=re.escape(f'Net: rate must be a number, got {bad!r}')):
            check_rate(bad, 'rate', 'Net')
    for bad in (-0.1, 1, 1.5, float('nan')):
        with pytest.raises(ValueError, match=r'Net: rate must be in \[0, 1\)'):
            check_rate(bad, 'rate', 'Net')
    for bad in (0, -1, float('nan')):
        with pytest.raises(ValueError, match='Net: ratio must be > 0'):
            check_rate(bad, 'ratio', 'Net', high=None)


def test_check_type():
    assert check_type(False, 'flag', 'Net', bool) is False
    assert check_type(3, 'size', 'Net', int) == 3
    with pytest.raises(TypeError, match="Net: flag must be a bool, got 'yes' \\(str\\)"):
        check_type('yes', 'flag', 'Net', bool)
    with pytest.raises(TypeError, match='size must be a int'):
        check_type(True, 'size', 'Net', int)  # a bool is not an int here
    with pytest.raises(TypeError, match='flag must be a bool'):
        check_type(1, 'flag', 'Net', bool)


def test_check_per_stage():
    assert check_per_stage((1, 2), 'depths', 'Net', 2) == [1, 2]
    assert check_per_stage(7, 'size', 'Net', 3, allow_scalar=True) == [7, 7, 7]
    assert check_per_stage([1.5, 2], 'ratio', 'Net', 2, (int, float)) == [1.5, 2]
    bad_values = [(1, 0), (1, -1), (1, 2, 3), (1, True), '12', (1, 2.5), 3, None]
    for bad in bad_values:
        with pytest.raises(ValueError, match=r'Net: depths must be 2 positive int values \(one per stage\)'):
            check_per_stage(bad, 'depths', 'Net', 2)
    with pytest.raises(ValueError, match='a positive value or 2 positive'):
        check_per_stage(0, 'size', 'Net', 2, allow_scalar=True)


class TwoStage(MultiScaleBackbone):
    num_stages = 2

    stage_strides = (2, 4)

    def __init__(self, **kwargs):
        kwargs.setdefault('out_indices', (0, 1))
        super().__init__(**kwargs)
        self.stem = nn.Conv2d(3, 4, 1)
        self.stages = nn.ModuleList([nn.Sequential(nn.Conv2d(4, 4, 3, 2, 1), nn.BatchNorm2d(4)) for _ in range(2)])
        self.stage_channels = [4, 4]
        self.add_output_norms(nn.BatchNorm2d)
        self.scale = nn.Parameter(torch.ones(1))

    def stem_modules(self):
        return [self.stem]

    def stem_parameters(self):
        return [self.scale]

    def stage_modules(self, index):
        return [self.stages[index]]

    def init_weights_from_scratch(self):
        nn.init.constant_(self.stem.weight, 2.)

    def forward_stages(self, x):
        x, outs = self.stem(x) * self.scale, []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(self.output_norm(i)(x))
        return tuple(outs)


def test_frozen_stages_and_norm_eval_survive_train():
    net = TwoStage(frozen_stages=1, norm_eval=True)
    net.train()
    assert not net.stem.training and not net.stages[0].training and net.stages[1].training
    assert not net.norm0.training  # the output norm of a frozen stage
    assert not any(p.requires_grad for p in [*net.stem.parameters(), net.scale, *net.norm0.parameters()])
    assert not any(p.requires_grad for p in net.stages[0].parameters())
    assert all(p.requires_grad for p in net.stages[1].parameters())
    assert not net.stages[1][1].training  # norm_eval
    assert not net.norm1.training


def test_outputs_empty_batch_autocast_and_feature_info():
    net = TwoStage(out_indices=(1, )).eval()
    assert net.feature_info == [dict(num_chs=4, reduction=4, stage=1)]
    assert net.output_norm(0) is None and isinstance(net.output_norm(1), nn.BatchNorm2d)
    assert [tuple(o.shape) for o in net(torch.randn(2, 3, 9, 6))] == [(2, 4, 3, 2)]
    assert [tuple(o.shape) for o in net(torch.randn(0, 3, 9, 6))] == [(0, 4, 3, 2)]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert net(torch.randn(1, 3, 9, 6))[0].dtype == torch.bfloat16
        assert net(torch.randn(0, 3, 9, 6))[0].dtype == torch.bfloat16


def test_init_cfg_rule():
    net = TwoStage()
    net.init_weights()
    assert torch.all(net.stem.weight == 2)  # no init_cfg: the family's own
    net = TwoStage(init_cfg=dict(type='Constant', layer='Conv2d', val=3., bias=0.))
    net.init_weights()
    assert torch.all(net.stem.weight == 3)  # any other: mmengine's initialisers alone


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
    with pytest.raises(TypeError, match='floating-point image, got torch.uint8'):
        net.check_input(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match=r'torch.float32 parameters and got a torch.float64 input'):
        net.check_input(torch.zeros(1, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match='norm_eval must be a bool'):
        TwoStage(norm_eval='yes')


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
