_base_ = './mask-rcnn_pale-t_3x-ms_coco.py'

# Pale Transformer-B ImageNet-1K checkpoint trained with pale-b_8xb128_in1k.py (none was released); see docs/configs.md.
pretrained = 'checkpoints/pale-b_in1k.pth'
model = dict(
    backbone=dict(arch='b', drop_path_rate=0.5, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
