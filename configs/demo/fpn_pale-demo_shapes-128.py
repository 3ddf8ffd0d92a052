# Semantic FPN with a slim Pale Transformer (4 blocks) on the generated shapes data (CPU-sized).
_base_ = ['./_base_/fpn_demo.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='PaleTransformer',
        arch=dict(embed_dims=[32, 64, 128, 256], depths=[1, 1, 1, 1], num_heads=[2, 2, 4, 8]),
        # GroupNorm(1 group) in the Q/K/V convolutions instead of BN: batch statistics of 4
        # small images are too noisy (with BN the Semantic FPN demo learned only the background).
        conv_norm_cfg=dict(type='GN', num_groups=1),
        drop_path_rate=0.1),
    neck=dict(in_channels=[32, 64, 128, 256]))
