# Mask R-CNN with SG-Former-S (full size, from scratch) on the shapes data at COCO geometry: the GPU end-to-end check.
_base_ = ['../../_base_/models/mask-rcnn_fpn_amp.py', './_base_/coco_geometry.py']
model = dict(
    backbone=dict(_delete_=True, type='SGFormer', arch='s', drop_path_rate=0.1),
    neck=dict(in_channels=[64, 128, 256, 512]),
    roi_head=dict(bbox_head=dict(num_classes=3), mask_head=dict(num_classes=3)))
