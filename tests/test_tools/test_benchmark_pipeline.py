"""tools/analysis_tools/benchmark_pipeline.py: two demo configs, a few CPU iterations each, and the JSON."""
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tools' / 'misc'))
from generate_demo_data import generate  # noqa: E402

from mmvit_backbones.benchmark import RECORDER_PRIORITY  # noqa: E402

PEER = ROOT / 'configs' / 'demo' / 'mask-rcnn_crossformer-demo_shapes-128.py'
OTHER = ROOT / 'configs' / 'demo' / 'fpn_pale-demo_shapes-128.py'


def test_recorder_runs_between_the_timer_and_the_logger():
    from mmengine.hooks import IterTimerHook, LoggerHook
    from mmengine.runner.priority import get_priority
    assert get_priority(IterTimerHook.priority) < RECORDER_PRIORITY < get_priority(LoggerHook.priority)


def test_pipeline_benchmark_writes_json(tmp_path):
    data = tmp_path / 'data'
    generate(str(data), num_train=8, num_val=2, size=64, seed=1)
    out = tmp_path / 'pipeline.json'
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    result = subprocess.run(
        [sys.executable, 'tools/analysis_tools/benchmark_pipeline.py', str(OTHER), '--peer', str(PEER),
         '--iters', '2', '--warmup', '1', '--work-dir', str(tmp_path / 'work'), '--out', str(out),
         '--cfg-options', f'train_dataloader.dataset.data_root={data}/', 'train_dataloader.num_workers=0'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())

    assert report['settings']['iters'] == 2 and report['settings']['warmup'] == 1
    for key in ('date', 'torch', 'mmengine', 'mmdet', 'mmseg'):
        assert report['environment'][key], key
    # The peer is timed first when it is not among the configs.
    peer, other = report['results']
    assert [peer['config'], other['config']] == [str(PEER), str(OTHER)]
    for entry in (peer, other):
        assert entry['status'] == 'ok', entry.get('traceback')
        assert len(entry['iter_times']) == 2 and len(entry['iter_data_times']) == 2
        assert entry['time']['mean'] == pytest.approx(statistics.fmean(entry['iter_times']), abs=1e-5)
        assert entry['time']['median'] == pytest.approx(statistics.median(entry['iter_times']), abs=1e-5)
        assert all(t > d >= 0 for t, d in zip(entry['iter_times'], entry['iter_data_times']))
        assert entry['device'].startswith('cpu') and entry['max_memory_mib'] is None
    # Batches of 4 images: Mask R-CNN resizes the 64x64 images to 128x128; the FPN config crops 128x128.
    assert peer['input_shapes'] == {'4x3x128x128': 2}
    assert sum(other['input_shapes'].values()) == 2
    assert peer['ratio_to_peer'] == 1.0
    assert other['ratio_to_peer'] == pytest.approx(other['time']['mean'] / peer['time']['mean'], rel=1e-3)
    assert 'mask-rcnn_crossformer-demo_shapes-128' in result.stdout


def test_a_failing_config_is_reported_not_fatal(tmp_path):
    from mmvit_backbones.benchmark import benchmark_configs
    broken = tmp_path / 'broken.py'
    broken.write_text(f"_base_ = ['{PEER}']\nmodel = dict(backbone=dict(type='NoSuchBackbone'))\n")
    report = benchmark_configs([str(broken)], iters=1, warmup=0, work_dir=str(tmp_path))
    (entry, ) = report['results']
    assert entry['status'] == 'error' and 'NoSuchBackbone' in entry['error']


BENCHMARK_CONFIGS = ROOT / 'configs' / 'benchmarks'


def test_benchmark_configs_build_the_peers():
    import mmdet
    from mmdet.models.backbones import ResNet, SwinTransformer
    from mmengine.config import Config
    from mmseg.models.backbones import SwinTransformer as SegSwinTransformer

    from mmvit_backbones.runtime import build_model_from_config

    swin = Config.fromfile(BENCHMARK_CONFIGS / 'mask-rcnn_swin-t_mmdet_1x_coco.py')
    reference = Config.fromfile(Path(mmdet.__file__).parent / '.mim' / 'configs' / 'swin' /
                                'mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py').model.backbone
    ours = swin.model.backbone
    assert ours.type == 'mmdet.SwinTransformer' and ours.init_cfg is None
    assert {k: v for k, v in ours.items() if k not in ('type', 'init_cfg')} == {
        k: v for k, v in reference.items() if k not in ('type', 'init_cfg')}
    expected = {'mask-rcnn_swin-t_mmdet_1x_coco.py': SwinTransformer, 'mask-rcnn_r50_1x_coco.py': ResNet,
                'upernet_swin-t_mmseg_160k_ade20k-512x512.py': SegSwinTransformer}
    for name, backbone_type in expected.items():
        cfg = Config.fromfile(BENCHMARK_CONFIGS / name)
        model = build_model_from_config(cfg)  # on the CPU: Swin's constructor reads tensor values
        assert type(model.backbone) is backbone_type, name
        if name.startswith('mask-rcnn'):  # the amp base: torchvision's RoIAlign, which has bf16
            assert cfg.model.roi_head.bbox_roi_extractor.roi_layer.use_torchvision


def test_synthetic_coco_data_gives_the_1x_geometry(tmp_path):
    """Images of 800x1216 through the 1x COCO pipeline of the configs: batches of 2x800x1216."""
    from mmdet.registry import DATASETS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    generate(str(tmp_path), num_train=2, num_val=1, size=800, width=1216, seed=0)
    cfg = Config.fromfile(ROOT / 'configs' / 'pale' / 'mask-rcnn_pale-t_1x_coco.py')
    cfg.merge_from_dict({'train_dataloader.dataset.data_root': f'{tmp_path}/', **SYNTHETIC_COCO})
    init_default_scope('mmdet')
    sample = DATASETS.build(cfg.train_dataloader.dataset)[0]
    assert tuple(sample['inputs'].shape) == (3, 800, 1216)
    assert len(sample['data_samples'].gt_instances) > 0


# What docs/benchmarks/scripts/h200_s3_speed.sh passes with --cfg-options to point COCO configs at the data.
SYNTHETIC_COCO = {
    'train_dataloader.dataset.ann_file': 'annotations/instances_train.json',
    'train_dataloader.dataset.data_prefix.img': 'images/training/',
    'train_dataloader.dataset.metainfo.classes': ('circle', 'square', 'triangle'),
}
