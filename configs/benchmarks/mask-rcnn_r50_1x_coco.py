# mmdet's Mask R-CNN R-50 1x (configs/mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py: SGD, stem and stage 1 frozen,
# BatchNorm in eval mode) on this project's amp base (torchvision's RoIAlign, so bf16 --amp runs): a speed
# yardstick of docs/benchmarks/. From scratch: the GPU machine cannot download torchvision's weights.
_base_ = [
    '../_base_/models/mask-rcnn_fpn_amp.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

model = dict(backbone=dict(init_cfg=None))
