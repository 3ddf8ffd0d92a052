"""The pieces that let the detection configs train under ``--amp`` (``mmvit_backbones/models/losses.py``)."""
import pytest
import torch
from mmcv.ops import RoIAlign
from mmdet.models.losses import FocalLoss
from mmdet.registry import MODELS

import mmvit_backbones  # noqa: F401


def focal_inputs(device='cpu', scale=3.0):
    torch.manual_seed(0)
    pred = (torch.randn(64, 5) * scale).to(device)
    target = torch.randint(0, 6, (64, )).to(device)  # 5 = background
    weight = torch.rand(64).to(device)
    return pred, target, weight


def test_fp32_focal_loss_builds_under_mmdet_and_matches_focal_loss():
    loss = MODELS.build(dict(type='FP32FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=0.5))
    reference = FocalLoss(use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=0.5)
    assert loss.use_sigmoid
    pred, target, weight = focal_inputs()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = loss(pred.bfloat16(), target, weight, avg_factor=7.0)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, reference(pred.bfloat16().float(), target, weight, avg_factor=7.0))


def test_torchvision_roi_align_equals_mmcv_roi_align():
    # The Mask R-CNN configs switch to torchvision's kernel (it has a bf16 path): same values and gradients.
    torch.manual_seed(0)
    feats = torch.randn(2, 8, 25, 38, dtype=torch.float64)
    boxes = torch.rand(12, 4, dtype=torch.float64) * torch.tensor([150., 100., 150., 100.], dtype=torch.float64)
    boxes[:, 2:] += boxes[:, :2] + 4  # x2 > x1, y2 > y1
    rois = torch.cat([torch.randint(0, 2, (12, 1)).double(), boxes], dim=1)
    results = []
    for use_torchvision in (False, True):
        layer = RoIAlign(output_size=7, spatial_scale=1 / 4, sampling_ratio=0, use_torchvision=use_torchvision)
        x = feats.clone().requires_grad_()
        out = layer(x, rois)
        out.pow(2).sum().backward()
        results.append((out, x.grad))
    torch.testing.assert_close(results[1][0], results[0][0])
    torch.testing.assert_close(results[1][1], results[0][1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA (mmcv CUDA focal-loss kernel)')
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_fp32_focal_loss_is_finite_where_the_mmcv_kernel_is_not(dtype):
    pred, target, weight = focal_inputs('cuda', scale=20.0)  # logits beyond fp16's sigmoid range
    loss = MODELS.build(dict(type='FP32FocalLoss', use_sigmoid=True))
    with torch.autocast('cuda', dtype=dtype):
        value = loss(pred.to(dtype), target, weight)
    expected = FocalLoss(use_sigmoid=True)(pred.to(dtype).float(), target, weight)
    assert torch.isfinite(value)
    torch.testing.assert_close(value, expected)
