_base_ = ['../_base_/recipes/fpn_8xb2-80k_ade20k-512x512.py', './_base_/dense_backbone.py']
model = dict(
    backbone=_base_.backbone,
    neck=dict(in_channels=[64, 128, 256, 512]))
