# Mask R-CNN sized for the demo: 128x128 images, a slim FPN and heads, trained from scratch on CPU.
# A demo config inherits this and sets model.backbone (with _delete_=True) and model.neck.in_channels.
_base_ = ['../../_base_/models/mask-rcnn_fpn_amp.py', './shapes_instance.py', 'mmdet::_base_/default_runtime.py']
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

channels = 64
model = dict(
    neck=dict(out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=256, num_classes=3),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(in_channels=channels, conv_out_channels=channels, num_classes=3)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100), rcnn=dict(max_per_img=20)))

max_iters = 500
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[int(max_iters * 0.8)], gamma=0.1),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1),
    # Off in training; `tools/test.py --show-dir` turns it on (mmdet draws every test image).
    visualization=dict(type='DetVisualizationHook', draw=False, interval=1))
log_processor = dict(by_epoch=False)
# Reproducible on CPU: fixed seed, deterministic algorithms and a fixed number of CPU threads (float sums
# come out in another order with another thread count); the data loaders run in the main process.
randomness = dict(seed=0, deterministic=True)
torch_num_threads = 2
