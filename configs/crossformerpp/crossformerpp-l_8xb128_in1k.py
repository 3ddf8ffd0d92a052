_base_ = './crossformerpp-s_8xb128_in1k.py'
model = dict(
    backbone=dict(arch='l', drop_path_rate=0.5),
    head=dict(in_channels=1024))
