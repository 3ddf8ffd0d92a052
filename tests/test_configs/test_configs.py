"""Every config of the zoo: it parses, carries the papers' recipe, builds its
model through the library registry of its ``default_scope``, has the expected
number of parameters and runs a forward pass on CPU.

The expectations below are written from the issue and the specs (interface of
the backbones, the papers' recipes), not read back from the configs.
"""
import copy
import functools
import importlib.util
import math
import os.path as osp
import re
from glob import glob
from typing import Dict, List, Tuple

import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FAMILY_DIRS = ('sgformer', 'pale', 'crossformer', 'crossformerpp')
CONFIG_FILES = sorted(
    osp.relpath(path, REPO) for family in FAMILY_DIRS for path in glob(osp.join(REPO, 'configs', family, '*.py')))
CONFIG_IDS = [osp.basename(path)[:-3] for path in CONFIG_FILES]

# family dir -> (file-name prefix, backbone type, variants)
FAMILIES = {
    'sgformer': ('sg', 'SGFormer', 'smb'),
    'pale': ('pale', 'PaleTransformer', 'tsb'),
    'crossformer': ('crossformer', 'CrossFormer', 'tsbl'),
    'crossformerpp': ('crossformerpp', 'CrossFormerPP', 'sblh'),
}
# Stage-1 width of each variant (stages double it); the lead's backbone interface.
STEM_WIDTH = {
    'SGFormer': dict(s=64, m=64, b=96),
    'PaleTransformer': dict(t=64, s=96, b=128),
    'CrossFormer': dict(t=64, s=96, b=96, l=128),
    'CrossFormerPP': dict(s=64, b=96, l=128, h=128),
}
# ImageNet drop-path rates of the papers (SG-Former README; Pale spec; CrossFormer++ paper, section 5.1),
# also used for the dense tasks where the papers give none.
DROP_PATH = {
    'SGFormer': dict(s=0.1, m=0.2, b=0.4),
    'PaleTransformer': dict(t=0.2, s=0.4, b=0.5),
    'CrossFormer': dict(t=0.1, s=0.2, b=0.3, l=0.5),
    'CrossFormerPP': dict(s=0.2, b=0.3, l=0.5, h=0.7),
}
# Whole ImageNet classifiers (1000-class head) as the reference implementations count them (spec README).
CLASSIFIER_PARAMS = {
    ('SGFormer', 's'): 22_545_981, ('SGFormer', 'm'): 38_689_316, ('SGFormer', 'b'): 77_950_293,
    ('CrossFormer', 't'): 27_776_794, ('CrossFormer', 's'): 30_657_394,
    ('CrossFormer', 'b'): 51_971_554, ('CrossFormer', 'l'): 91_971_184,
    ('CrossFormerPP', 's'): 23_325_340, ('CrossFormerPP', 'b'): 51_994_594,
    ('CrossFormerPP', 'l'): 92_001_904, ('CrossFormerPP', 'h'): 95_962_944,
}
# Pale has no reference code: the spec's independent count, to be met within 1%.
PALE_CLASSIFIER_PARAMS = dict(t=21.75e6, s=48.31e6, b=85.32e6)

NAME_PATTERN = re.compile(
    r'^(?:(?P<pipeline>mask-rcnn|retinanet|fpn|upernet)_)?(?P<prefix>[a-z]+)-(?P<variant>[a-z])_(?P<rest>.+)$')
PIPELINE_SCOPE = {'mask-rcnn': 'mmdet', 'retinanet': 'mmdet', 'fpn': 'mmseg', 'upernet': 'mmseg', 'cls': 'mmpretrain'}


class ConfigName:
    """What a config's file name says: family, variant, pipeline and schedule."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.family = osp.basename(osp.dirname(path))
        self.stem = osp.basename(path)[:-3]
        match = NAME_PATTERN.match(self.stem)
        assert match, f'{self.stem} does not follow <pipeline>_<model>-<variant>_<schedule>_<data>'
        prefix, self.backbone_type, variants = FAMILIES[self.family]
        assert match['prefix'] == prefix, f'{self.stem}: prefix {match["prefix"]!r}, expected {prefix!r}'
        self.variant = match['variant']
        assert self.variant in variants, f'{self.stem}: unknown variant {self.variant!r}'
        self.pipeline = match['pipeline'] or 'cls'
        self.rest = match['rest']
        self.scope = PIPELINE_SCOPE[self.pipeline]

    @property
    def channels(self) -> List[int]:
        width = STEM_WIDTH[self.backbone_type][self.variant]
        return [width, 2 * width, 4 * width, 8 * width]


@functools.lru_cache(maxsize=None)
def load_config(path: str) -> Config:
    return Config.fromfile(osp.join(REPO, path))


@functools.lru_cache(maxsize=None)
def metafile_models() -> Dict[str, dict]:
    """Metafile entries of all families, by config path."""
    models = {}
    for family in FAMILY_DIRS:
        with open(osp.join(REPO, 'configs', family, 'metafile.yml')) as f:
            for model in yaml.safe_load(f)['Models']:
                assert model['Config'] not in models, f'{model["Config"]} listed twice'
                models[model['Config']] = model
    return models


@functools.lru_cache(maxsize=None)
def load_tool(name: str):
    """A script of tools/analysis_tools as a module."""
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'tools', 'analysis_tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=None)
def model_zoo_params() -> Dict[str, float]:
    """Parameters (millions) of docs/model_zoo.md (written by generate_model_zoo.py), by config path."""
    with open(osp.join(REPO, 'docs', 'model_zoo.md')) as f:
        return load_tool('generate_model_zoo').read_table_params(f.read())


def test_every_config_is_tested():
    assert len(CONFIG_FILES) == 84, 'the zoo has 6 configs for each of the 14 variants'
    names = [ConfigName(path) for path in CONFIG_FILES]
    matrix = {(n.family, n.variant, n.pipeline, n.rest) for n in names}
    for family, (_, _, variants) in FAMILIES.items():
        for variant in variants:
            for pipeline, rest in [('mask-rcnn', '1x_coco'), ('mask-rcnn', '3x-ms_coco'), ('retinanet', '1x_coco'),
                                   ('fpn', '8xb2-80k_ade20k-512x512'), ('upernet', '8xb2-160k_ade20k-512x512'),
                                   ('cls', '8xb128_in1k')]:
                assert (family, variant, pipeline, rest) in matrix, (family, variant, pipeline, rest)


def test_metafiles_list_every_config():
    models = metafile_models()
    assert sorted(models) == CONFIG_FILES
    for path, model in models.items():
        assert model['Name'] == osp.basename(path)[:-3]


# ----------------------------------------------------------------------------
# Parsing: the recipe of each pipeline.
# ----------------------------------------------------------------------------
def check_detection(cfg: Config, name: ConfigName) -> None:
    assert cfg.model.type == ('MaskRCNN' if name.pipeline == 'mask-rcnn' else 'RetinaNet')
    assert cfg.model.data_preprocessor.pad_size_divisor == 32
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 1e-4, 0.05)
    assert cfg.train_dataloader.batch_size == 2 and cfg.auto_scale_lr.base_batch_size == 16
    resize = [t for t in cfg.train_dataloader.dataset.pipeline if 'Resize' in t.type]
    assert len(resize) == 1 and resize[0].keep_ratio
    if name.rest == '3x-ms_coco':
        assert cfg.train_cfg.max_epochs == 36
        assert resize[0].type == 'RandomResize' and sorted(resize[0].scale) == [(1333, 480), (1333, 800)]
        milestones = [s.milestones for s in cfg.param_scheduler if s.type == 'MultiStepLR']
        assert milestones == [[27, 33]]
    else:
        assert cfg.train_cfg.max_epochs == 12
        assert resize[0].type == 'Resize' and tuple(resize[0].scale) == (1333, 800)
    test_resize = [t for t in cfg.test_dataloader.dataset.pipeline if t.type == 'Resize']
    assert tuple(test_resize[0].scale) == (1333, 800)
    channels = name.channels
    if name.pipeline == 'mask-rcnn':
        assert tuple(cfg.model.backbone.out_indices) == (0, 1, 2, 3)
        assert cfg.model.neck.in_channels == channels
    else:  # RetinaNet's pyramid is P3-P7
        assert tuple(cfg.model.backbone.out_indices) == (1, 2, 3)
        assert cfg.model.neck.in_channels == channels[1:]
        assert (cfg.model.neck.start_level, cfg.model.neck.add_extra_convs, cfg.model.neck.num_outs) == (
            0, 'on_input', 5)


def check_segmentation(cfg: Config, name: ConfigName) -> None:
    assert cfg.model.type == 'EncoderDecoder' and cfg.model.pretrained is None
    assert tuple(cfg.model.data_preprocessor.size) == (512, 512)
    assert tuple(cfg.crop_size) == (512, 512)
    crops = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomCrop']
    assert tuple(crops[0].crop_size) == (512, 512)
    train_types = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    for augmentation in ('RandomResize', 'RandomFlip', 'PhotoMetricDistortion'):
        assert augmentation in train_types
    assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs = 16
    assert cfg.model.decode_head.num_classes == 150
    optimizer = cfg.optim_wrapper.optimizer
    schedulers = cfg.param_scheduler
    if name.pipeline == 'fpn':
        assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 1e-4, 1e-4)
        assert cfg.train_cfg.max_iters == 80000
        assert [(s.type, s.power, s.eta_min, s.end) for s in schedulers] == [('PolyLR', 0.9, 0.0, 80000)]
        assert cfg.model.neck.in_channels == name.channels
    else:
        assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 6e-5, 0.01)
        assert cfg.train_cfg.max_iters == 160000
        warmup, decay = schedulers
        assert (warmup.type, warmup.by_epoch, warmup.end) == ('LinearLR', False, 1500)
        assert (decay.type, decay.power, decay.eta_min, decay.begin, decay.end) == ('PolyLR', 1.0, 0.0, 1500, 160000)
        assert cfg.model.decode_head.in_channels == name.channels
        assert cfg.model.auxiliary_head.in_channels == name.channels[2]
        assert cfg.model.auxiliary_head.num_classes == 150
        # multi-scale + flip test through tools/test.py --tta
        assert 'tta_model' in cfg and any(t.type == 'TestTimeAug' for t in cfg.tta_pipeline)


def check_classification(cfg: Config, name: ConfigName) -> None:
    model = cfg.model
    assert model.type == 'ImageClassifier'
    assert tuple(model.backbone.out_indices) == (3, )
    assert model.neck.type == 'GlobalAveragePooling'
    assert (model.head.type, model.head.num_classes, model.head.in_channels) == (
        'LinearClsHead', 1000, name.channels[3])
    assert model.head.loss.type == 'LabelSmoothLoss' and model.head.loss.label_smooth_val == 0.1
    augments = {a.type: a.alpha for a in model.train_cfg.augments}
    assert augments == {'Mixup': 0.8, 'CutMix': 1.0}
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 1e-3, 0.05)
    assert cfg.train_dataloader.batch_size == 128 and cfg.auto_scale_lr.base_batch_size == 1024
    train_types = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    for augmentation in ('RandomResizedCrop', 'RandomFlip', 'RandAugment', 'RandomErasing'):
        assert augmentation in train_types
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.end, cosine.type, cosine.begin) == ('LinearLR', 20, 'CosineAnnealingLR', 20)
    if name.backbone_type == 'SGFormer':
        # timm: cosine over 300 epochs, then 10 cool-down epochs; EMA decay 0.99992.
        assert cosine.end == 300 and cfg.train_cfg.max_epochs == 310
        assert [(h.type, h.momentum) for h in cfg.custom_hooks] == [('EMAHook', pytest.approx(8e-5))]
        eval_short_side = 248
    else:
        assert cfg.train_cfg.max_epochs == 300
        assert not cfg.get('custom_hooks')
        eval_short_side = 256
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        resize, crop = [t for t in loader.dataset.pipeline if t.type in ('ResizeEdge', 'CenterCrop')]
        assert (resize.scale, resize.edge, resize.interpolation) == (eval_short_side, 'short', 'bicubic')
        assert crop.crop_size == 224
    preprocessor = cfg.data_preprocessor
    assert preprocessor.mean == [123.675, 116.28, 103.53] and preprocessor.std == [58.395, 57.12, 57.375]


def check_crossformer(backbone: Config, name: ConfigName) -> None:
    """Group sizes and intervals per pipeline (CrossFormer spec, sections 3 and 6)."""
    if name.pipeline == 'cls':
        assert backbone.final_norm is True
        expected = ([7, 7, 7, 7], [8, 4, 2, 1]) if name.backbone_type == 'CrossFormer' else ([4, 4, 14, 7],
                                                                                              [4, 2, 1, 1])
        assert backbone.get('lda_version', 2) == 2
    elif name.backbone_type == 'CrossFormerPP':
        expected = ([7, 7, 7, 7], [8, 4, 2, 1])
        assert backbone.lda_version == 1  # the FLOPs of the paper's dense models
    else:
        # the released Semantic FPN models use larger groups in stages 1-2
        expected = ([14, 14, 7, 7], [16, 8, 2, 1]) if name.pipeline == 'fpn' else ([7, 7, 7, 7], [8, 4, 2, 1])
        assert backbone.lda_version == 1
    assert (list(backbone.group_size), list(backbone.interval)) == expected


@pytest.mark.parametrize('path', CONFIG_FILES, ids=CONFIG_IDS)
def test_config_recipe(path):
    name = ConfigName(path)
    cfg = load_config(path)
    assert cfg.default_scope == name.scope
    assert cfg.custom_imports == dict(imports=['mmvit_backbones'], allow_failed_imports=False)
    backbone = cfg.model.backbone
    assert backbone.type == name.backbone_type and backbone.arch == name.variant
    assert backbone.drop_path_rate == DROP_PATH[name.backbone_type][name.variant]
    if name.pipeline == 'cls':
        assert 'init_cfg' not in backbone
        check_classification(cfg, name)
    else:
        checkpoint = backbone.init_cfg.checkpoint
        assert backbone.init_cfg.type == 'Pretrained'
        assert f'{name.family}-{name.variant}_in1k' in checkpoint, checkpoint
        if name.scope == 'mmdet':
            check_detection(cfg, name)
        else:
            check_segmentation(cfg, name)
    if name.family.startswith('crossformer'):
        check_crossformer(backbone, name)
    if name.backbone_type == 'PaleTransformer' and name.pipeline != 'cls':
        # BatchNorm statistics over the 16 images of a step, not 2
        assert backbone.conv_norm_cfg.type == 'SyncBN'


def is_smallest_variant(name: ConfigName) -> bool:
    return name.variant == FAMILIES[name.family][2][0]


LARGER_SIZE_FILES = [p for p in CONFIG_FILES if not is_smallest_variant(ConfigName(p))]


def changed_leaves(a, b, prefix: str = '') -> set:
    """Dotted paths of the values that differ between two config dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        return set().union(*(changed_leaves(a.get(k), b.get(k), f'{prefix}{k}.') for k in set(a) | set(b)))
    return set() if a == b and type(a) is type(b) else {prefix[:-1]}


# What a larger size may change in the smallest config of its pipeline (docs/configs.md).
SIZE_SETTINGS = {
    'pretrained', 'model.backbone.arch', 'model.backbone.drop_path_rate', 'model.backbone.init_cfg.checkpoint',
    'model.neck.in_channels', 'model.decode_head.in_channels', 'model.auxiliary_head.in_channels',
    'model.head.in_channels'}
# What the 3x schedule changes in the 1x one: the multi-scale training pipeline and 36 epochs.
SCHEDULE_3X_SETTINGS = {
    'train_pipeline', 'train_dataloader.dataset.pipeline', 'max_epochs', 'train_cfg.max_epochs',
    'param_scheduler'}


@pytest.mark.parametrize('path', LARGER_SIZE_FILES, ids=[osp.basename(p)[:-3] for p in LARGER_SIZE_FILES])
def test_larger_size_changes_only_the_size_settings(path):
    name = ConfigName(path)
    smallest = path.replace(f'-{name.variant}_', f'-{FAMILIES[name.family][2][0]}_')
    changed = changed_leaves(load_config(smallest).to_dict(), load_config(path).to_dict())
    assert changed <= SIZE_SETTINGS, sorted(changed - SIZE_SETTINGS)
    assert {'model.backbone.arch', 'model.backbone.drop_path_rate'} <= changed


@pytest.mark.parametrize('path', [p for p in CONFIG_FILES if p.endswith('_3x-ms_coco.py')],
                         ids=[i for i in CONFIG_IDS if i.endswith('_3x-ms_coco')])
def test_3x_config_changes_only_the_schedule_of_its_1x(path):
    one = load_config(path.replace('_3x-ms_coco.py', '_1x_coco.py')).to_dict()
    three = load_config(path).to_dict()
    changed = changed_leaves(one, three)
    assert changed == SCHEDULE_3X_SETTINGS, sorted(changed ^ SCHEDULE_3X_SETTINGS)


# ----------------------------------------------------------------------------
# Building: parameters and a forward pass.
# ----------------------------------------------------------------------------
def fake_detection_batch(with_mask: bool, size: Tuple[int, int]) -> dict:
    from mmdet.testing import demo_mm_inputs
    return demo_mm_inputs(batch_size=1, image_shapes=[(3, *size)], num_items=[3], num_classes=80,
                          with_mask=with_mask)


def fake_segmentation_batch(size: Tuple[int, int]) -> dict:
    """Two images: the pooling branch of UperNet normalises 1x1 maps, which needs a batch."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    inputs, samples = [], []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, *size)))
        inputs.append(torch.randint(0, 256, (3, *size), dtype=torch.uint8))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def fake_classification_batch(size: Tuple[int, int]) -> dict:
    from mmpretrain.structures import DataSample
    return dict(inputs=[torch.randint(0, 256, (3, *size), dtype=torch.uint8)],
                data_samples=[DataSample().set_gt_label(998)])


def check_param_count(num_params: int, name: ConfigName, path: str) -> None:
    if name.pipeline == 'cls':
        if name.backbone_type == 'PaleTransformer':
            expected = PALE_CLASSIFIER_PARAMS[name.variant]
            assert abs(num_params - expected) <= 0.01 * expected, (num_params, expected)
        else:
            assert num_params == CLASSIFIER_PARAMS[(name.backbone_type, name.variant)]
        return
    entry = metafile_models()[path]
    paper = entry['Metadata'].get('Paper Parameters (M)')
    if paper is None:
        return
    relative = abs(num_params / 1e6 - paper) / paper
    if relative > 0.02:
        # A difference beyond 2% must be explained, in the metafile and in docs/configs.md.
        assert 'Parameters' in entry.get('Note', ''), (
            f'{name.stem}: {num_params / 1e6:.2f}M params vs {paper}M in the paper ({relative:.1%}), unexplained')
        with open(osp.join(REPO, 'docs', 'configs.md')) as f:
            rows = [line for line in f if line.startswith('|') and f'`{name.stem}`' in line]
        assert rows, f'docs/configs.md does not explain the parameter count of {name.stem}'
        assert f'| {num_params / 1e6:.2f} |' in rows[0], f'docs/configs.md gives a stale count for {name.stem}'


@pytest.mark.parametrize('path', CONFIG_FILES, ids=CONFIG_IDS)
def test_config_builds_and_runs(path):
    name = ConfigName(path)
    build_model = load_tool('get_flops').build_model
    cfg = copy.deepcopy(load_config(path))  # the cached config stays untouched
    # The full-size model, on the meta device (no memory, no initialisation), for its parameters.
    with torch.device('meta'):
        num_params = sum(p.numel() for p in build_model(cfg).parameters())
    check_param_count(num_params, name, path)
    assert model_zoo_params().get(path) == round(num_params / 1e6, 2), (
        f'docs/model_zoo.md is stale for {name.stem}: run tools/analysis_tools/generate_model_zoo.py')

    # A training step's forward pass, with overrides that change no parameter, for time:
    # segmentors pad training batches to `size` (512x512); Mask R-CNN samples 512 RoIs per
    # image for its box and mask heads; larger variants than the family's smallest run
    # with two blocks per stage (their widths, hence the wiring of necks and heads, kept).
    if name.scope == 'mmseg':
        cfg.model.data_preprocessor.size = (64, 64)
    if name.pipeline == 'mask-rcnn':
        cfg.model.train_cfg.rcnn.sampler.num = 64
    if not is_smallest_variant(name):
        arch_zoo = MODELS.get(name.backbone_type).arch_zoo
        cfg.model.backbone.arch = dict(arch_zoo[name.variant], depths=(2, 2, 2, 2))
    model = build_model(cfg)
    if name.scope == 'mmdet':
        batch = fake_detection_batch(with_mask=name.pipeline == 'mask-rcnn', size=(64, 64))
    elif name.scope == 'mmseg':
        batch = fake_segmentation_batch(size=(64, 64))
    else:
        batch = fake_classification_batch(size=(64, 64))
    model.train()
    torch.manual_seed(0)
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)  # the sum the optimizer would step on
    assert math.isfinite(total.item()), losses
    # every loss the pipeline trains with is there
    expected = {
        'mask-rcnn': {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'},
        'retinanet': {'loss_cls', 'loss_bbox'},
        'fpn': {'decode.loss_ce'},
        'upernet': {'decode.loss_ce', 'aux.loss_ce'},
        'cls': {'loss'},
    }[name.pipeline]
    assert expected <= set(losses), sorted(losses)


# ----------------------------------------------------------------------------
# Released ImageNet checkpoints fit the classification configs (tools/test.py).
# ----------------------------------------------------------------------------
RELEASED_KEY_LISTS = {  # tests/fixtures/keys: name TAB shape of the authors' files
    'configs/sgformer/sg-s_8xb128_in1k.py': 'sg_former_s',
    'configs/sgformer/sg-m_8xb128_in1k.py': 'sg_former_m',
    'configs/sgformer/sg-b_8xb128_in1k.py': 'sg_former_b',
    'configs/crossformer/crossformer-s_8xb128_in1k.py': 'crossformer_s',
    'configs/crossformerpp/crossformerpp-s_8xb128_in1k.py': 'crossformerpp_s',
}


@pytest.mark.parametrize('path,key_list', sorted(RELEASED_KEY_LISTS.items()),
                         ids=[osp.basename(p)[:-3] for p in sorted(RELEASED_KEY_LISTS)])
def test_released_classifier_fits_the_config(path, key_list):
    """What the offline converter writes with --classifier from a released file has
    exactly the keys and shapes of the config's model, so tools/test.py evaluates it."""
    from mmvit_backbones.checkpoint import to_classifier_state_dict
    from mmvit_backbones.models.backbones.crossformer import convert_crossformer_state_dict
    from mmvit_backbones.models.backbones.sg_former import convert_sgformer_state_dict

    released = {}
    with open(osp.join(REPO, 'tests', 'fixtures', 'keys', f'{key_list}.txt')) as f:
        for line in f:
            key, shape = line.rstrip('\n').split('\t')
            released[key] = torch.empty(tuple(int(s) for s in shape.strip('()').split(',') if s.strip()))
    convert = convert_sgformer_state_dict if key_list.startswith('sg') else convert_crossformer_state_dict
    converted = to_classifier_state_dict(convert(released))

    with torch.device('meta'):
        model = load_tool('get_flops').build_model(load_config(path))
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert {key: tuple(value.shape) for key, value in converted.items()} == expected
