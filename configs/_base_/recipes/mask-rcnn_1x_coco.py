# Mask R-CNN 1x on COCO, the papers' recipe (docs/configs.md): mmdet's Mask R-CNN
# with the bf16-safe RoIAlign, COCO instances at 1333x800, AdamW 12 epochs.
# A config adds its family's backbone (configs/<family>/_base_/dense_backbone.py)
# and the neck's in_channels.
_base_ = [
    '../models/mask-rcnn_fpn_amp.py',
    'mmdet::_base_/datasets/coco_instance.py',
    '../schedules/coco_adamw_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# mmdet's ResNet-50 goes; the config puts its family's backbone in its place.
model = dict(backbone=dict(_delete_=True))
