# ImageNet-1K classifier around a backbone of this plugin: the backbone's last
# stage (already normalised), global average pooling and one linear layer, as
# in all three papers. Training uses the DeiT/Swin regularisation the papers
# follow: label smoothing 0.1, Mixup 0.8 and CutMix 1.0. Leaf configs add
# ``backbone`` and ``head.in_channels``.
model = dict(
    type='ImageClassifier',
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0),
        cal_acc=False),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))
