_base_ = ['../_base_/recipes/upernet_8xb2-160k_ade20k-512x512.py', './_base_/dense_backbone.py']
model = dict(
    backbone=_base_.backbone,
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
