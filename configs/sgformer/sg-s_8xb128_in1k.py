_base_ = ['../_base_/recipes/imagenet_8xb128.py', './_base_/classifier.py']

# Evaluation preprocessing of the released checkpoints (timm 0.3.4 defaults):
# shorter side to 248 (= 224 / 0.9, bicubic), center crop 224, ImageNet mean/std.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=248, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# The reference trains with an EMA of the weights (decay 0.99992 per step) and
# reports the EMA model; mmengine's momentum is 1 - decay.
custom_hooks = [dict(type='EMAHook', momentum=8e-5, priority='ABOVE_NORMAL')]

# timm's cosine schedule of the reference reaches its minimum at epoch 300 and
# keeps it for 10 cool-down epochs.
train_cfg = dict(max_epochs=310)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=20, end=300),
]
