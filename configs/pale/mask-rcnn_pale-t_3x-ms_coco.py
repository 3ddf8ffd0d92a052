_base_ = ['../_base_/recipes/mask-rcnn_3x-ms_coco.py', './_base_/dense_backbone.py']
model = dict(
    backbone=_base_.backbone,
    neck=dict(in_channels=[64, 128, 256, 512]))
