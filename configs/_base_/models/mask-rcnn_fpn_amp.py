# mmdet's Mask R-CNN with torchvision's RoIAlign: mmcv 2.1's CUDA RoIAlign has
# no bfloat16 kernel, so `tools/train.py --amp` (bf16) would stop at the first
# iteration. torchvision's op is the same aligned, adaptive-sampling RoIAlign and
# runs in float32 under autocast. The backbone is set by each config.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
model = dict(
    roi_head=dict(
        bbox_roi_extractor=dict(roi_layer=dict(use_torchvision=True)),
        mask_roi_extractor=dict(roi_layer=dict(use_torchvision=True))))
