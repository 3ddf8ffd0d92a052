_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    '../_base_/schedules/ade20k_fpn_adamw_80k.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
# CrossFormer-T released ImageNet-1K checkpoint (as downloaded); see docs/configs.md.
pretrained = 'checkpoints/crossformer-t_in1k.pth'
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='CrossFormer',
        arch='t',
        # G [14, 14, 7, 7], I [16, 8, 2, 1]: larger groups in stages 1-2, the
        # setting of the released Semantic FPN models. lda_version=1 is the 2021
        # long-distance attention (fixed interval I, groups that grow with the
        # image) that trained the released COCO/ADE20K models; 2 is the current
        # code (fixed G x G groups spaced I apart).
        group_size=[14, 14, 7, 7],
        interval=[16, 8, 2, 1],
        lda_version=1,
        # No dense CrossFormer-T model in the papers: the ImageNet rate.
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 256, 512]),
    decode_head=dict(num_classes=150))

# 8 GPUs x 2 images = batch 16.
train_dataloader = dict(batch_size=2)
