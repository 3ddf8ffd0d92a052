# CrossFormer-T as the backbone of the detection and segmentation configs: the
# smallest config of each pipeline puts `backbone` in `model.backbone`, the
# larger sizes change arch, drop_path_rate and the checkpoint (docs/configs.md).
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

# CrossFormer-T released ImageNet-1K checkpoint (as downloaded); see docs/configs.md.
pretrained = 'checkpoints/crossformer-t_in1k.pth'
backbone = dict(
    type='CrossFormer',
    arch='t',
    # G and I of the ImageNet models; lda_version=1 is the 2021 attention that
    # trained the released COCO/ADE20K models (docs/configs.md).
    group_size=[7, 7, 7, 7],
    interval=[8, 4, 2, 1],
    lda_version=1,
    drop_path_rate=0.1,  # the ImageNet rate: no dense CrossFormer-T in the papers
    out_indices=(0, 1, 2, 3),
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))
