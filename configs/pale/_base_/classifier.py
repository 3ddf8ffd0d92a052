# Pale Transformer-T ImageNet-1K classifier: the last stage through its norm,
# global average pooling and one linear layer (docs/configs.md). The larger
# sizes change arch, drop_path_rate and head.in_channels.
_base_ = '../../_base_/models/imagenet_classifier.py'
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

model = dict(
    backbone=dict(type='PaleTransformer', arch='t', drop_path_rate=0.2, out_indices=(3, )),
    head=dict(in_channels=512))
