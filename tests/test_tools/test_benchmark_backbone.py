"""tools/analysis_tools/benchmark_backbone.py on CPU with a tiny backbone."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools' / 'analysis_tools' / 'benchmark_backbone.py'
TINY = "arch={'embed_dims': 16, 'depths': [1, 1, 1, 1], 'num_heads': [1, 2, 4, 8]}"


def run_tool(tmp_path, *args):
    environ = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    result = subprocess.run([sys.executable, str(TOOL), *map(str, args)], cwd=tmp_path, env=environ,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_benchmark_writes_every_measurement(tmp_path):
    out, profile = tmp_path / 'bench.json', tmp_path / 'profile'
    reference = tmp_path / 'reference.json'
    reference.write_text(json.dumps({'CrossFormer:t': {'cls': {'train_fp32': 1.0, 'train_fp32_peak_gib': 1.0}}}))
    result = run_tool(tmp_path, 'CrossFormer:t', '--geometry', 'cls', '--batch-size', '2', '--size', '64', '80',
                      '--warmup', '1', '--iters', '2', '--repeats', '1', '--device', 'cpu', '--options',
                      TINY, '--reference', reference, '--out', out, '--profile', profile)
    report = json.loads(out.read_text())
    assert report['environment']['torch']
    assert report['environment']['device'] == 'cpu'
    (model, ) = report['models']
    assert model['name'] == 'CrossFormer:t'
    # The tiny arch was built, not the full 't' (27.8M parameters).
    assert 0 < model['params'] < 1_000_000
    measured = {(m['mode'], m['precision']): m for m in model['measurements']}
    assert set(measured) == {(mode, p) for mode in ('infer', 'train') for p in ('fp32', 'bf16')}
    for entry in measured.values():
        assert entry['geometry'] == 'cls' and entry['batch_size'] == 2 and entry['size'] == [64, 80]
        assert len(entry['run_seconds']) == 1 and entry['run_seconds'][0] > 0
        assert abs(entry['images_per_s'] - 2 * 2 / entry['run_seconds'][0]) < 0.02 * entry['images_per_s']
        assert entry['peak_memory_gib'] is None  # measured on CUDA only
    # The ratio is against the reference entry of the same mode and precision only.
    assert measured['train', 'fp32']['reference_ratio'] == {
        'throughput': round(measured['train', 'fp32']['images_per_s'], 3)}
    assert 'reference_ratio' not in measured['infer', 'fp32']
    assert len(list(profile.glob('*.txt'))) == 4
    assert '| CrossFormer:t | cls | train | bf16 |' in result.stdout


def test_benchmark_reads_a_config(tmp_path):
    config = tmp_path / 'cfg.py'
    config.write_text("model = dict(type='Foo', backbone=dict(type='PaleTransformer', "
                      "arch=dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_heads=[2, 2, 4, 4])))\n")
    out = tmp_path / 'bench.json'
    run_tool(tmp_path, config, '--geometry', 'dense', '--batch-size', '1', '--size', '45', '--mode', 'train',
             '--precision', 'fp32', '--warmup', '0', '--iters', '1', '--repeats', '1', '--device', 'cpu', '--out',
             out)
    (model, ) = json.loads(out.read_text())['models']
    (entry, ) = model['measurements']
    assert (entry['geometry'], entry['mode'], entry['precision'], entry['size']) == ('dense', 'train', 'fp32',
                                                                                      [45, 45])
    assert model['params'] < 1_000_000
