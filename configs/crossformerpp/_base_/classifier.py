# CrossFormer++-S ImageNet-1K classifier: the last stage through its norm, global
# average pooling and one linear layer (docs/configs.md). The larger sizes
# change arch, drop_path_rate and head.in_channels.
_base_ = '../../_base_/models/imagenet_classifier.py'
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='CrossFormerPP',
        arch='s',
        # Progressive group size (PGS) of the ImageNet models.
        group_size=[4, 4, 14, 7],
        interval=[4, 2, 1, 1],
        drop_path_rate=0.2,
        final_norm=True,
        out_indices=(3, )),
    head=dict(in_channels=512))
