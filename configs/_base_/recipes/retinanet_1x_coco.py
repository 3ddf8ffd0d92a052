# RetinaNet 1x on COCO, the papers' recipe (docs/configs.md): mmdet's RetinaNet
# with the focal loss in float32, COCO boxes at 1333x800, AdamW 12 epochs.
# RetinaNet's FPN starts at stride 8 (P3-P7): a config adds its family's backbone
# returning stages 2-4 (out_indices=(1, 2, 3)) and their widths as in_channels.
_base_ = [
    '../models/retinanet_fpn_amp.py',
    'mmdet::_base_/datasets/coco_detection.py',
    '../schedules/coco_adamw_1x.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(
    # mmdet's ResNet-50 goes; the config puts its family's backbone in its place.
    backbone=dict(_delete_=True),
    neck=dict(start_level=0, num_outs=5))
