_base_ = ['../_base_/recipes/imagenet_8xb128.py', './_base_/classifier.py']
# No checkpoint was released; evaluation uses the base pipeline: shorter side
# 256 (= 224 / 0.875, bicubic), center crop 224, ImageNet mean/std.
