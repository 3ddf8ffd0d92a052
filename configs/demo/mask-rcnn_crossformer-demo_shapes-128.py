# Mask R-CNN with a slim CrossFormer (4 blocks) on the generated shapes data: `make demo` trains it on CPU.
_base_ = ['./_base_/mask-rcnn_demo.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='CrossFormer',
        arch=dict(embed_dims=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8]),
        drop_path_rate=0.1),
    neck=dict(in_channels=[32, 64, 128, 256]))
