_base_ = [
    '../_base_/models/imagenet_classifier.py',
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='CrossFormerPP',
        arch='s',
        # Progressive group size (PGS) of the ImageNet models.
        group_size=[4, 4, 14, 7],
        interval=[4, 2, 1, 1],
        drop_path_rate=0.2,
        final_norm=True,
        out_indices=(3, )),
    head=dict(in_channels=512))

# 8 GPUs x 128 images = batch 1024 (lr 1e-3 in the schedule base).
train_dataloader = dict(batch_size=128)
# The base pipeline is the released models' evaluation: shorter side 256
# (bicubic), center crop 224, ImageNet mean/std.
