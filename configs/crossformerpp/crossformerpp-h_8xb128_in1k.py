_base_ = './crossformerpp-s_8xb128_in1k.py'
# The paper trains ++H with 0.7 (its released yaml file says 0.5).
model = dict(
    backbone=dict(arch='h', drop_path_rate=0.7),
    head=dict(in_channels=1024))
