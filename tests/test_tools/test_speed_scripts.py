"""The Python helpers of the device scripts (docs/benchmarks/scripts) on CPU."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'docs' / 'benchmarks' / 'scripts'))
import compile_shapes  # noqa: E402
import count_ops  # noqa: E402
import profile_blocks  # noqa: E402
import summarize_speed  # noqa: E402

TINY_SGFORMER = "arch={'embed_dims': [16, 32, 64, 128], 'depths': [2, 2, 2, 1], 'num_heads': [2, 2, 4, 8]}"


def test_profile_blocks_counts_ops_per_block_kind(tmp_path):
    out = tmp_path / 'profile.json'
    profile_blocks.main(['SGFormer:s', '--geometry', 'cls', '--precision', 'fp32', '--batch-size', '1', '--size',
                         '64', '--device', 'cpu', '--iters', '1', '--warmup', '1', '--options', TINY_SGFORMER,
                         '--out', str(out)])
    (report, ) = json.loads(out.read_text())['profiles']
    groups = report['per_block']
    # Hybrid-scale and self-guided blocks apart in stages 1-3, the global blocks of stage 4: 7 blocks in all.
    assert sum(g['blocks'] for g in groups.values()) == 7
    kinds = {name.split('[')[1].split(']')[0] for name in groups}
    assert kinds == {'HybridScaleAttention', 'SelfGuidedAttention', 'GlobalAttention'}
    for counts in groups.values():
        assert counts['fwd_ops'] > 10 and counts['bwd_ops'] > counts['fwd_ops'] / 2
        assert counts['fwd_kernels'] == 0  # no CUDA here
    # Every block's operators are part of the step's.
    assert report['ops_per_step'] > sum(g['blocks'] * g['fwd_ops'] for g in groups.values())
    assert report['device_kernel_ms_per_step'] is None and report['eager_step_ms'] > 0
    assert report['top_ops_eager'] and all(op['ms_per_step'] >= 0 for op in report['top_ops_eager'])


def test_compile_shapes_follow_the_1x_pipeline():
    assert compile_shapes.resized((480, 640)) == (800, 1067)
    assert compile_shapes.resized((640, 427)) == (1199, 800)
    assert compile_shapes.resized((300, 1000)) == (400, 1333)  # the long side caps it
    shapes = compile_shapes.batch_shapes(50)
    assert shapes == compile_shapes.batch_shapes(50)  # seeded
    assert all(h % 32 == 0 and w % 32 == 0 and min(h, w) == 800 and max(h, w) <= 1344 for h, w in shapes)
    assert len(set(shapes)) > 3  # the point: several shapes, as a schedule sees them


def test_summarize_speed_tables(tmp_path):
    pipeline = dict(results=[
        dict(name='peer', status='ok', device='dev', time=dict(mean=0.2, median=0.19), data_time=dict(mean=0.01),
             max_memory_mib=3000, input_shapes={'2x3x800x1216': 30}, ratio_to_peer=1.0),
        dict(name='broken', status='error', error='RuntimeError: boom')])
    backbone = dict(models=[dict(name='X:t', measurements=[
        dict(geometry='cls', mode='train', precision='fp32', ms_per_iter=100.0),
        dict(geometry='cls', mode='train', precision='bf16', ms_per_iter=80.0)])])
    (tmp_path / 'p.json').write_text(json.dumps(pipeline))
    (tmp_path / 'b.json').write_text(json.dumps(backbone))
    text = summarize_speed.main(['--pipeline', str(tmp_path / 'p.json'), '--backbone', f"after={tmp_path / 'b.json'}"])
    assert '| peer | dev | 0.2000 | 0.1900 | 1.00 | 0.0100 | 3000 | 2x3x800x1216 x30 |' in text
    assert 'RuntimeError: boom' in text
    assert '| X:t | cls | train | 100.0 | 80.0 | 1.25 |' in text


def test_count_ops_compares_the_blocks_before_and_after(tmp_path):
    out = tmp_path / 'blocks.json'
    count_ops.main(['--geometry', 'tiny', '--repeats', '1', '--json', str(out)])
    rows = json.loads(out.read_text())['rows']
    # Five blocks, each as the former implementation (tests/reference/) and the current one.
    assert [row['impl'] for row in rows] == ['before', 'after'] * 5
    for row in rows:
        assert row['ops_fp32'] > row['kernels_fp32'] > 0 and row['ops_bf16'] > row['kernels_bf16'] > 0
        assert row['casts_bf16'] > 0  # autocast's casts are counted
    # Pale's fused Q/K/V path dispatches fewer kernels than the three separate convolutions did.
    assert rows[1]['kernels_fp32'] < rows[0]['kernels_fp32']


@pytest.mark.parametrize('argv, misplaced', [(['SGFormer:s', '--geometry', 'tiny'], '--geometry'),
                                             (['--size', '64', '64'], '--size')])
def test_count_ops_rejects_the_other_modes_options(argv, misplaced, capsys):
    with pytest.raises(SystemExit):
        count_ops.main(argv)
    assert misplaced in capsys.readouterr().err


@pytest.mark.parametrize('script', ['h200_s3_speed.sh', 'h200_s3_compile.sh', 'h200_s3_profile.sh', 'device_setup.sh',
                                    'h200_s4_speed.sh', 'h200_onedl.sh'])
def test_device_scripts_parse(script):
    import subprocess
    subprocess.run(['bash', '-n', str(ROOT / 'docs' / 'benchmarks' / 'scripts' / script)], check=True)
