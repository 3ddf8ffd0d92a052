"""tools/analysis_tools/get_flops.py and generate_model_zoo.py, and tools/test.py --tta."""
import importlib.util
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]
TINY_CROSSFORMER = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])


def load_script(*parts: str):
    path = ROOT.joinpath('tools', *parts)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def get_flops():
    return load_script('analysis_tools', 'get_flops.py')


@pytest.fixture(scope='module')
def zoo():
    return load_script('analysis_tools', 'generate_model_zoo.py')


def tiny_config(path: str, **backbone) -> Config:
    cfg = Config.fromfile(ROOT / path)
    cfg.model.backbone.arch = TINY_CROSSFORMER
    cfg.model.backbone.update(backbone)
    return cfg


def test_classifier_flops_are_backbone_plus_pooling_plus_head(get_flops):
    """The whole classifier is counted: backbone, then average pooling (one
    FLOP per pooled element) and the linear head (C x 1000 MACs)."""
    from mmvit_backbones.analysis import get_flops as count

    cfg = tiny_config('configs/crossformer/crossformer-t_8xb128_in1k.py')
    cfg.model.head.in_channels = 128
    result = get_flops.config_complexity(cfg, shape=(64, 64))
    assert result['input_shape'] == (64, 64)
    model = get_flops.build_model(cfg)
    backbone = count(model.backbone, (3, 64, 64))['flops']
    assert result['flops'] == backbone + 128 * 2 * 2 + 128 * 1000
    assert result['params'] == sum(p.numel() for p in model.parameters())


def test_detector_runs_at_its_padded_size(get_flops):
    cfg = tiny_config('configs/crossformer/retinanet_crossformer-t_1x_coco.py')
    cfg.model.neck.in_channels = [32, 64, 128]
    small = get_flops.config_complexity(cfg, shape=(33, 47))
    assert small['input_shape'] == (64, 64)  # DetDataPreprocessor pads to a multiple of 32
    assert small['flops'] == get_flops.config_complexity(cfg, shape=(64, 64))['flops']
    assert get_flops.config_complexity(cfg, shape=(64, 96))['flops'] > small['flops']


def test_default_shapes_and_bad_shape(get_flops):
    assert get_flops.DEFAULT_SHAPES == {'mmdet': (800, 1280), 'mmseg': (512, 2048), 'mmpretrain': (224, 224)}
    cfg = tiny_config('configs/crossformer/crossformer-t_8xb128_in1k.py')
    with pytest.raises(ValueError, match='two positive ints'):
        get_flops.config_complexity(cfg, shape=(64, ))


def test_tables_round_trip(zoo, tmp_path):
    models = zoo.load_metafiles()
    measured = {m['Config']: (i + 0.123, 10 * i + 0.04) for i, m in enumerate(models)}
    out = tmp_path / 'docs' / 'zoo.md'
    out.parent.mkdir()
    zoo.write_tables(str(out), models, measured, create=True)
    text = out.read_text()
    assert text.count(zoo.START) == 1 and text.count(zoo.END) == 1
    rows = zoo.read_table_rows(text)
    assert sorted(rows) == sorted(measured)
    assert zoo.read_table_params(text) == {path: round(p, 2) for path, (p, _) in measured.items()}
    # links are relative to the written file and lead to the configs
    readme = tmp_path / 'README.md'
    readme.write_text(f'# title\n\n{zoo.START}\nSTALE TABLE\n{zoo.END}\n\nrest\n')
    zoo.write_tables(str(readme), models, measured, create=False)
    assert readme.read_text().startswith('# title\n\n') and readme.read_text().endswith('\n\nrest\n')
    assert 'STALE TABLE' not in readme.read_text()
    for written in (out, readme):
        for path, row in zoo.read_table_rows(written.read_text()).items():
            link = re.fullmatch(r'\[config\]\((.+)\)', row['Config']).group(1)
            assert (written.parent / link).resolve() == (ROOT / path).resolve()
    row = rows['configs/crossformer/mask-rcnn_crossformer-s_1x_coco.py']
    assert (row['Model'], row['Paper params (M)'], row['box AP'], row['mask AP']) == ('CrossFormer-S', '50.2',
                                                                                      '45.4', '41.4')
    assert row['Weights'].startswith('[released](https://drive.google.com/')


def test_splice_needs_one_marker_pair(zoo):
    assert zoo.splice(f'a\n{zoo.START}\nx\n{zoo.END}\nb', 'new') == f'a\n{zoo.START}\nnew\n{zoo.END}\nb'
    for broken in ('no markers', f'{zoo.END}\n{zoo.START}', f'{zoo.START}{zoo.START}{zoo.END}'):
        with pytest.raises(ValueError, match='expected one'):
            zoo.splice(broken, 'new')


def test_test_py_tta_wraps_the_model():
    test_tool = load_script('test.py')
    cfg = Config.fromfile(ROOT / 'configs/sgformer/upernet_sg-s_8xb2-160k_ade20k-512x512.py')
    model = cfg.model.copy()
    test_tool.enable_tta(cfg)
    assert cfg.model.type == 'SegTTAModel' and cfg.model.module == model
    assert cfg.test_dataloader.dataset.pipeline == cfg.tta_pipeline
    cfg = Config.fromfile(ROOT / 'configs/crossformer/crossformer-t_8xb128_in1k.py')
    with pytest.raises(ValueError, match='tta_model and tta_pipeline'):
        test_tool.enable_tta(cfg)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_readme_table_matches_docs(zoo):
    """The README's model zoo is the generated one, the same as docs/model_zoo.md."""
    def without_links(path):
        rows = zoo.read_table_rows((ROOT / path).read_text())
        return {config: {k: v for k, v in row.items() if k != zoo.CONFIG} for config, row in rows.items()}

    docs = without_links('docs/model_zoo.md')
    assert len(docs) == 84
    assert without_links('README.md') == docs


def test_flops_of_sgformer_where_token_groups_are_padded():
    """Tracing SG-Former away from its native sizes (token groups padded to their merge
    rates) gives the FLOPs of its eager forward's key counts, not an index error."""
    from mmvit_backbones.analysis import get_flops as count
    from mmvit_backbones.models.backbones.sg_former import SGFormer, reallocation_plan

    arch = dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 1], num_heads=[2, 2, 4, 8])
    model = SGFormer(arch, out_indices=(0, ))  # stage 1 only: one HS and one SG block
    native, padded = count(model, (3, 224, 224))['flops'], count(model, (3, 120, 168))['flops']
    assert reallocation_plan(30 * 42, SGFormer.merge_rates[0]).padded
    assert padded > 0 and padded != native
