# Pale Transformer-T as the backbone of the detection and segmentation configs:
# the smallest config of each pipeline puts `backbone` in `model.backbone`, the
# larger sizes change arch, drop_path_rate and the checkpoint (docs/configs.md).
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

# Pale Transformer-T ImageNet-1K checkpoint trained with pale-t_8xb128_in1k.py (none was released); see docs/configs.md.
pretrained = 'checkpoints/pale-t_in1k.pth'
backbone = dict(
    type='PaleTransformer',
    arch='t',
    drop_path_rate=0.2,  # the ImageNet rate: the paper gives no dense one
    # SyncBN: 2 images per GPU are too few for BatchNorm statistics (docs/configs.md).
    conv_norm_cfg=dict(type='SyncBN', requires_grad=True),
    out_indices=(0, 1, 2, 3),
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))
