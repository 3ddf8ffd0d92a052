# UperNet 160k on ADE20K, the papers' recipe (docs/configs.md): 512x512 crops,
# AdamW 160k iterations. A config adds its family's backbone
# (configs/<family>/_base_/dense_backbone.py) and the heads' in_channels.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    '../schedules/ade20k_upernet_adamw_160k.py',
    'mmseg::_base_/default_runtime.py',
]

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    # mmseg's ResNet-50 goes; the config puts its family's backbone in its place.
    backbone=dict(_delete_=True),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))

# 8 GPUs x 2 images = batch 16.
train_dataloader = dict(batch_size=2)
# Single-scale test by default; `tools/test.py --tta` runs the multi-scale
# (0.5-1.75) + flip test of the papers (`tta_pipeline` of the ADE20K base).
