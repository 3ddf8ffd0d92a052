_base_ = [
    '../_base_/models/retinanet_fpn_amp.py',
    'mmdet::_base_/datasets/coco_detection.py',
    '../_base_/schedules/coco_adamw_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

# CrossFormer-T released ImageNet-1K checkpoint (as downloaded); see docs/configs.md.
pretrained = 'checkpoints/crossformer-t_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='CrossFormer',
        arch='t',
        # G=7, I=[8, 4, 2, 1] as on ImageNet. lda_version=1 is the 2021
        # long-distance attention (fixed interval I, groups that grow with the
        # image) that trained the released COCO/ADE20K models; 2 is the current
        # code (fixed G x G groups spaced I apart).
        group_size=[7, 7, 7, 7],
        interval=[8, 4, 2, 1],
        lda_version=1,
        # No dense CrossFormer-T model in the papers: the ImageNet rate.
        drop_path_rate=0.1,
        # RetinaNet's FPN starts at stride 8: stage 1 is not returned.
        out_indices=(1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512], start_level=0, num_outs=5))
