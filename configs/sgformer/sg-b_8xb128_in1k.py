_base_ = './sg-s_8xb128_in1k.py'
model = dict(
    backbone=dict(arch='b', drop_path_rate=0.4),
    head=dict(in_channels=768))
