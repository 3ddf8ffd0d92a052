"""Losses that let mmdet heads train under bf16 / fp16 autocast."""
import torch
from torch import nn

from ..registry import register_model


@register_model
class FP32FocalLoss(nn.Module):
    """mmdet's ``FocalLoss``, evaluated in float32 outside autocast.

    On a GPU, mmdet's ``FocalLoss`` calls mmcv's CUDA sigmoid focal loss,
    which has no bfloat16 kernel and in float16 rounds the sigmoid of large
    logits to exactly 0 or 1, whose log is -inf (what was observed, and on
    which mmcv versions: ``docs/benchmarks/README.md``, "End to end"). The
    classification logits are cast to float32 first; the result is the same
    as ``FocalLoss`` on float32 inputs.

    Args:
        **kwargs: The arguments of ``mmdet.models.losses.FocalLoss``
            (``use_sigmoid``, ``gamma``, ``alpha``, ``reduction``,
            ``loss_weight``, ``activated``).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__()
        # Imported here: only mmdet heads build this loss, and importing
        # mmdet.models at plugin import would cost mmseg/mmpretrain users seconds.
        from mmdet.models.losses import FocalLoss
        self.focal_loss = FocalLoss(**kwargs)
        # Heads read it from their loss module (e.g. DINO-style heads).
        self.use_sigmoid = self.focal_loss.use_sigmoid

    def forward(self, pred: torch.Tensor, target: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        with torch.autocast(device_type=pred.device.type, enabled=False):
            return self.focal_loss(pred.float(), target, *args, **kwargs)
