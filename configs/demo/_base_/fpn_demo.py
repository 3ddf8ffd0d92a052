# Semantic FPN sized for the demo: 128x128 crops, a slim neck and head, trained from scratch on CPU.
# A demo config inherits this and sets model.backbone (with _delete_=True) and model.neck.in_channels.
_base_ = ['mmseg::_base_/models/fpn_r50.py', './shapes_semantic.py', 'mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

# Plain BN: the demo runs on one CPU process (SyncBN needs GPUs).
norm_cfg = dict(type='BN', requires_grad=True)
channels = 64
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    pretrained=None,
    neck=dict(out_channels=channels),
    decode_head=dict(in_channels=[channels] * 4, channels=channels, num_classes=4, norm_cfg=norm_cfg))

max_iters = 1500
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=50, end=max_iters),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1),
    # Off in training; `tools/test.py --show-dir` turns it on, and then every image is drawn (mmseg's default: 1 in 50).
    visualization=dict(type='SegVisualizationHook', draw=False, interval=1))
log_processor = dict(by_epoch=False)
# Reproducible on CPU: fixed seed, deterministic algorithms and a fixed number of CPU threads (float sums
# come out in another order with another thread count); the data loaders run in the main process.
randomness = dict(seed=0, deterministic=True)
torch_num_threads = 2
