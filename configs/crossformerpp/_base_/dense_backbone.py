# CrossFormer++-S as the backbone of the detection and segmentation configs: the
# smallest config of each pipeline puts `backbone` in `model.backbone`, the
# larger sizes change arch, drop_path_rate and the checkpoint (docs/configs.md).
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

# CrossFormer++-S released ImageNet-1K checkpoint (as downloaded); see docs/configs.md.
pretrained = 'checkpoints/crossformerpp-s_in1k.pth'
backbone = dict(
    type='CrossFormerPP',
    arch='s',
    # Dense tasks fine-tune with G=7, I=[8, 4, 2, 1], not the ImageNet PGS, and
    # the 2021 attention of the paper's dense figures, lda_version=1 (docs/configs.md).
    group_size=[7, 7, 7, 7],
    interval=[8, 4, 2, 1],
    lda_version=1,
    drop_path_rate=0.2,  # the ImageNet rate: the paper gives no dense one
    out_indices=(0, 1, 2, 3),
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))
