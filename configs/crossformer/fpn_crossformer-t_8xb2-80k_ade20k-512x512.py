_base_ = ['../_base_/recipes/fpn_8xb2-80k_ade20k-512x512.py', './_base_/dense_backbone.py']
# Larger groups in stages 1-2, as the released Semantic FPN models (docs/configs.md).
model = dict(
    backbone=dict(_base_.backbone, group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1]),
    neck=dict(in_channels=[64, 128, 256, 512]))
