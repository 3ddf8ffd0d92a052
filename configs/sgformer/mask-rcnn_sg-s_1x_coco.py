_base_ = [
    '../_base_/models/mask-rcnn_fpn_amp.py',
    'mmdet::_base_/datasets/coco_instance.py',
    '../_base_/schedules/coco_adamw_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

# SG-Former-S released ImageNet-1K checkpoint (the .pth.tar file, as downloaded); see docs/configs.md.
pretrained = 'checkpoints/sgformer-s_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='SGFormer',
        arch='s',
        # The paper gives no dense-task drop-path rate: the ImageNet one.
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 256, 512]))
