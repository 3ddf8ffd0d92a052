# The papers' UperNet recipe on ADE20K (after Swin): AdamW, lr 6e-5, weight
# decay 0.01, 1500 iterations of linear warm-up, then linear decay to 0 over
# 160k iterations.
_base_ = 'mmseg::_base_/schedules/schedule_160k.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    # As for Swin: no weight decay on normalisation layers (matched by type).
    paramwise_cfg=dict(norm_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
