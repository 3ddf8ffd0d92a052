_base_ = './upernet_crossformerpp-s_8xb2-160k_ade20k-512x512.py'

# CrossFormer++-L released ImageNet-1K checkpoint (as downloaded); see docs/configs.md.
pretrained = 'checkpoints/crossformerpp-l_in1k.pth'
model = dict(
    backbone=dict(arch='l', drop_path_rate=0.5, init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
