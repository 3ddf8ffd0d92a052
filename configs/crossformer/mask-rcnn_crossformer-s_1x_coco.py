_base_ = './mask-rcnn_crossformer-t_1x_coco.py'

# CrossFormer-S released ImageNet-1K checkpoint (as downloaded); see docs/configs.md.
pretrained = 'checkpoints/crossformer-s_in1k.pth'
model = dict(
    backbone=dict(arch='s', drop_path_rate=0.2, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
