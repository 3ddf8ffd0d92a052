# The peer of the speed benchmarks (docs/benchmarks/): mmdet's own Swin-T with the settings of mmdet's
# configs/swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py, in the same Mask R-CNN as this project's backbones
# (the amp base: torchvision's RoIAlign, so bf16 --amp runs) and their schedule. From scratch: the GPU machine
# cannot download mmdet's pretrained file, and the speed does not depend on the weights.
_base_ = [
    '../_base_/models/mask-rcnn_fpn_amp.py',
    'mmdet::_base_/datasets/coco_instance.py',
    '../_base_/schedules/coco_adamw_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdet.SwinTransformer',
        embed_dims=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.2,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        convert_weights=True,
        init_cfg=None),
    neck=dict(in_channels=[96, 192, 384, 768]))
