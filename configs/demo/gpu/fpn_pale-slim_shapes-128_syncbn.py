# Semantic FPN with a slim Pale Transformer and SyncBN (Q/K/V convolutions and decode head) on the shapes data:
# the 2-GPU check. Nothing random after initialisation (no flips or crops, no dropout or stochastic depth), so
# that 2 GPUs x 2 images follow 1 GPU x 4 images (the same samples per step: the sampler deals a shuffled list).
_base_ = ['../_base_/fpn_demo.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='PaleTransformer',
        arch=dict(embed_dims=[32, 64, 128, 256], depths=[1, 1, 2, 1], num_heads=[2, 2, 4, 8]),
        drop_path_rate=0.0,
        conv_norm_cfg=norm_cfg),
    neck=dict(in_channels=[32, 64, 128, 256]),
    decode_head=dict(norm_cfg=norm_cfg, dropout_ratio=0.0))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
max_iters = 40
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=20, max_keep_ckpts=3))
