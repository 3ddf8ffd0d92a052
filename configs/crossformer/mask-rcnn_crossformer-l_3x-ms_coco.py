_base_ = './mask-rcnn_crossformer-t_3x-ms_coco.py'

# CrossFormer-L released ImageNet-1K checkpoint (as downloaded); see docs/configs.md.
pretrained = 'checkpoints/crossformer-l_in1k.pth'
model = dict(
    backbone=dict(arch='l', drop_path_rate=0.5, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
