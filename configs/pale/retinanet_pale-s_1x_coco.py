_base_ = './retinanet_pale-t_1x_coco.py'

# Pale Transformer-S ImageNet-1K checkpoint trained with pale-s_8xb128_in1k.py (none was released); see docs/configs.md.
pretrained = 'checkpoints/pale-s_in1k.pth'
model = dict(
    backbone=dict(arch='s', drop_path_rate=0.4, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768]))
