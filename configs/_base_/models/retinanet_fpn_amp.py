# mmdet's RetinaNet with its focal loss computed in float32 (FP32FocalLoss):
# mmcv 2.1's CUDA sigmoid focal loss has no bfloat16 kernel and overflows in
# float16, so `tools/train.py --amp` would stop (bf16) or reach NaN (fp16).
# The backbone is set by each config.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
model = dict(bbox_head=dict(loss_cls=dict(type='FP32FocalLoss')))
