# RetinaNet with CrossFormer-S (full size, from scratch) on the shapes data at COCO geometry.
_base_ = ['../../_base_/models/retinanet_fpn_amp.py', './_base_/coco_geometry.py']
model = dict(
    backbone=dict(_delete_=True, type='CrossFormer', arch='s'),
    neck=dict(in_channels=[96, 192, 384, 768], start_level=1, add_extra_convs='on_input'),
    bbox_head=dict(num_classes=3))
# RetinaNet has no mask head.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1216, 800), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_evaluator = dict(metric='bbox')
test_evaluator = val_evaluator
