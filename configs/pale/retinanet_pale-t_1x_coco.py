_base_ = [
    '../_base_/models/retinanet_fpn_amp.py',
    'mmdet::_base_/datasets/coco_detection.py',
    '../_base_/schedules/coco_adamw_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

# Pale Transformer-T ImageNet-1K checkpoint trained with pale-t_8xb128_in1k.py (none was released); see docs/configs.md.
pretrained = 'checkpoints/pale-t_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='PaleTransformer',
        arch='t',
        # The paper gives no dense-task drop-path rate: the ImageNet one.
        drop_path_rate=0.2,
        # BatchNorm of the separable Q/K/V convolutions, synchronised across GPUs:
        # 2 images per GPU are too few for its statistics (the paper does not say).
        conv_norm_cfg=dict(type='SyncBN', requires_grad=True),
        # RetinaNet's FPN starts at stride 8: stage 1 is not returned.
        out_indices=(1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512], start_level=0, num_outs=5))
