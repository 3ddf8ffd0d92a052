# Semantic FPN with CrossFormer++-S (full size, from scratch) on the shapes data at ADE20K geometry.
_base_ = ['mmseg::_base_/models/fpn_r50.py', './_base_/ade_geometry.py']
# Plain BN on one GPU (mmseg's base uses SyncBN); the 2-GPU check sets SyncBN.
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(512, 512)),
    pretrained=None,
    backbone=dict(_delete_=True, type='CrossFormerPP', arch='s'),
    neck=dict(in_channels=[64, 128, 256, 512]),
    decode_head=dict(num_classes=4, norm_cfg=norm_cfg))
