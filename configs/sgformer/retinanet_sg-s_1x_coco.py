_base_ = ['../_base_/recipes/retinanet_1x_coco.py', './_base_/dense_backbone.py']
model = dict(
    backbone=dict(_base_.backbone, out_indices=(1, 2, 3)),
    neck=dict(in_channels=[128, 256, 512]))
