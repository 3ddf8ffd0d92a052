# The same Mask R-CNN with mmdet's ResNet-50 (from scratch, BN trained): the yardstick for SG-Former-S.
_base_ = ['../../_base_/models/mask-rcnn_fpn_amp.py', './_base_/coco_geometry.py']
model = dict(
    backbone=dict(frozen_stages=-1, norm_eval=False, init_cfg=None),
    roi_head=dict(bbox_head=dict(num_classes=3), mask_head=dict(num_classes=3)))
