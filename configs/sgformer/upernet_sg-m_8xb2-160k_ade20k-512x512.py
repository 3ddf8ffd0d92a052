_base_ = './upernet_sg-s_8xb2-160k_ade20k-512x512.py'

# SG-Former-M released ImageNet-1K checkpoint (the .pth.tar file, as downloaded); see docs/configs.md.
pretrained = 'checkpoints/sgformer-m_in1k.pth'
model = dict(
    backbone=dict(arch='m', drop_path_rate=0.2, init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
