# ImageNet-1K, the papers' recipe (docs/configs.md): mmpretrain's Swin data
# pipeline and AdamW schedule. A config adds its family's classifier
# (configs/<family>/_base_/classifier.py).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]

# 8 GPUs x 128 images = batch 1024 (lr 1e-3 in the schedule base).
train_dataloader = dict(batch_size=128)
