# SG-Former-S as the backbone of the detection and segmentation configs: the
# smallest config of each pipeline puts `backbone` in `model.backbone`, the
# larger sizes change arch, drop_path_rate and the checkpoint (docs/configs.md).
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

# SG-Former-S released ImageNet-1K checkpoint (the .pth.tar file, as downloaded); see docs/configs.md.
pretrained = 'checkpoints/sgformer-s_in1k.pth'
backbone = dict(
    type='SGFormer',
    arch='s',
    drop_path_rate=0.1,  # the ImageNet rate: the paper gives no dense one
    out_indices=(0, 1, 2, 3),
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))
