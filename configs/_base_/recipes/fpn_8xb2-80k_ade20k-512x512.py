# Semantic FPN 80k on ADE20K, the papers' recipe (docs/configs.md): 512x512
# crops, AdamW 80k iterations. A config adds its family's backbone
# (configs/<family>/_base_/dense_backbone.py) and the neck's in_channels.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    '../schedules/ade20k_fpn_adamw_80k.py',
    'mmseg::_base_/default_runtime.py',
]

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    # mmseg's ResNet-50 goes; the config puts its family's backbone in its place.
    backbone=dict(_delete_=True),
    decode_head=dict(num_classes=150))

# 8 GPUs x 2 images = batch 16.
train_dataloader = dict(batch_size=2)
