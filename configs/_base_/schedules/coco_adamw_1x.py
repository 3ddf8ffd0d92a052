# The papers' COCO recipe: AdamW, lr 1e-4, weight decay 0.05, 12 epochs with
# the lr divided by 10 after epochs 8 and 11, batch 16 (8 GPUs x 2 images).
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    # As for Swin: no weight decay on normalisation layers (matched by type,
    # so LayerNorm, GroupNorm and BatchNorm alike).
    paramwise_cfg=dict(norm_decay_mult=0.0))
