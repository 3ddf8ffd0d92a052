_base_ = './mask-rcnn_sg-s_3x-ms_coco.py'

# SG-Former-B released ImageNet-1K checkpoint (the .pth.tar file, as downloaded); see docs/configs.md.
pretrained = 'checkpoints/sgformer-b_in1k.pth'
model = dict(
    backbone=dict(arch='b', drop_path_rate=0.4, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
