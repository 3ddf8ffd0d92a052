# The UperNet peer of the speed benchmarks (docs/benchmarks/): mmseg's own Swin-T UperNet config, from scratch
# (the GPU machine cannot download its pretrained file; the speed does not depend on the weights).
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py']
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

model = dict(pretrained=None, backbone=dict(init_cfg=None))
