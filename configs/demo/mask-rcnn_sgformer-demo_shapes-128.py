# Mask R-CNN with a slim SG-Former (one hybrid-scale / self-guided pair per stage) on the generated shapes data (CPU-sized).
_base_ = ['./_base_/mask-rcnn_demo.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='SGFormer',
        arch=dict(embed_dims=[32, 64, 128, 256], depths=[2, 2, 2, 1], num_heads=[2, 2, 4, 8]),
        drop_path_rate=0.1),
    neck=dict(in_channels=[32, 64, 128, 256]))
