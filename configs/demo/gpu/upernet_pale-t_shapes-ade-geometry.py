# UperNet with Pale-T (full size, from scratch) on the shapes data at ADE20K geometry.
_base_ = ['mmseg::_base_/models/upernet_r50.py', './_base_/ade_geometry.py']
# Plain BN on one GPU (mmseg's base uses SyncBN); the 2-GPU check sets SyncBN.
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(512, 512)),
    pretrained=None,
    backbone=dict(_delete_=True, type='PaleTransformer', arch='t', drop_path_rate=0.2,
                  conv_norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=4, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=256, num_classes=4, norm_cfg=norm_cfg))
