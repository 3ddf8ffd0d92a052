_base_ = ['../_base_/recipes/imagenet_8xb128.py', './_base_/classifier.py']
# The base pipeline is the released models' evaluation: shorter side 256
# (bicubic), center crop 224, ImageNet mean/std.
