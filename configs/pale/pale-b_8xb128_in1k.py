_base_ = './pale-t_8xb128_in1k.py'
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='b',
        drop_path_rate=0.5),
    head=dict(in_channels=1024))
