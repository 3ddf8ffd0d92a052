_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    '../_base_/schedules/ade20k_upernet_adamw_160k.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
# SG-Former-S released ImageNet-1K checkpoint (the .pth.tar file, as downloaded); see docs/configs.md.
pretrained = 'checkpoints/sgformer-s_in1k.pth'
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='SGFormer',
        arch='s',
        # The paper gives no dense-task drop-path rate: the ImageNet one.
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    auxiliary_head=dict(in_channels=256, num_classes=150))

# 8 GPUs x 2 images = batch 16.
train_dataloader = dict(batch_size=2)
# Single-scale test by default; `tools/test.py --tta` runs the multi-scale
# (0.5-1.75) + flip test of the papers (`tta_pipeline` of the ADE20K base).
