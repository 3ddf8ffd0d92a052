# The papers' Semantic FPN recipe on ADE20K (after PVT): AdamW, lr 1e-4,
# weight decay 1e-4, 80k iterations, polynomial decay with power 0.9.
_base_ = 'mmseg::_base_/schedules/schedule_80k.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=80000, by_epoch=False),
]
