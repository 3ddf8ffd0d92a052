"""mmvit_backbones.deployment and tools/deployment/export_backbone.py: exported graphs reproduce eager outputs."""
import os
import subprocess
import sys

import pytest
import torch

from mmvit_backbones.deployment import build_backbone, export_batch_size, export_onnx, export_program
from mmvit_backbones.models.backbones import CrossFormer, CrossFormerPP, PaleTransformer, SGFormer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-4
EXPORT_SIZE, SECOND_SIZE = (64, 96), (96, 64)
# --dynamic: exported at one size, run at another batch, height and width inside the program's range of sizes
# (README, "Deployment").
DYNAMIC_TYPES = ['CrossFormer', 'CrossFormerPP', 'PaleTransformer', 'SGFormer']
DYNAMIC_EXPORT_SIZE, SECOND_BATCH, DYNAMIC_SECOND_SIZE = (96, 128), 3, (72, 120)

# Tiny archs with every block kind (as in tests/test_layers/test_block_compile.py).
TINY_ARCHS = {
    CrossFormer: dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8]),
    CrossFormerPP: dict(embed_dims=16, depths=[1, 1, 4, 1], num_heads=[1, 2, 4, 8]),
    PaleTransformer: dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_heads=[2, 2, 4, 4]),
    SGFormer: dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 1], num_heads=[2, 2, 4, 8]),
}
TYPES = [t.__name__ for t in TINY_ARCHS]


def tiny(type_name):
    torch.manual_seed(0)
    cls = next(t for t in TINY_ARCHS if t.__name__ == type_name)
    return cls(arch=TINY_ARCHS[cls], drop_path_rate=0.).eval()


def assert_outputs_close(got, expected):
    assert len(got) == len(expected)
    for out, ref in zip(got, expected):
        assert out.shape == ref.shape
        assert (torch.as_tensor(out) - ref).abs().max().item() <= TOLERANCE


def eager(model, x):
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize('type_name', TYPES)
def test_exported_program_matches_eager(type_name):
    model = tiny(type_name)
    # References first: tracing must not be able to leave anything in the model that eager mode reuses.
    x = torch.randn(1, 3, *EXPORT_SIZE)
    expected = eager(model, x)
    program = export_program(model, EXPORT_SIZE).module()
    assert_outputs_close(program(x), expected)
    with pytest.raises(AssertionError, match='Guard failed'):  # another size is refused, not computed wrongly
        program(torch.randn(1, 3, *SECOND_SIZE))


def dynamic_inputs():
    return (torch.randn(export_batch_size(True), 3, *DYNAMIC_EXPORT_SIZE),
            torch.randn(SECOND_BATCH, 3, *DYNAMIC_SECOND_SIZE))


@pytest.mark.parametrize('type_name', DYNAMIC_TYPES)
def test_dynamic_program_matches_eager_at_a_second_size(type_name):
    model = tiny(type_name)
    inputs = dynamic_inputs()
    expected = [eager(model, x) for x in inputs]
    program = export_program(model, DYNAMIC_EXPORT_SIZE, dynamic=True).module()
    for x, ref in zip(inputs, expected):
        assert_outputs_close(program(x), ref)


@pytest.mark.parametrize('type_name', DYNAMIC_TYPES)
def test_dynamic_onnx_model_matches_eager_at_a_second_size(type_name, tmp_path):
    ort = pytest.importorskip('onnxruntime')
    model = tiny(type_name)
    inputs = dynamic_inputs()
    expected = [eager(model, x) for x in inputs]
    path = export_onnx(model, DYNAMIC_EXPORT_SIZE, str(tmp_path / 'backbone.onnx'), dynamic=True)
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    for x, ref in zip(inputs, expected):
        assert_outputs_close(session.run(None, {'x': x.numpy()}), ref)


@pytest.mark.parametrize('type_name', TYPES)
def test_onnx_model_matches_eager_under_onnxruntime(type_name, tmp_path):
    ort = pytest.importorskip('onnxruntime')
    model = tiny(type_name)
    x = torch.randn(1, 3, *EXPORT_SIZE)
    expected = eager(model, x)
    path = export_onnx(model, EXPORT_SIZE, str(tmp_path / 'backbone.onnx'))
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    assert_outputs_close(session.run(None, {'x': x.numpy()}), expected)


def test_cli_exports_a_config_backbone(tmp_path):
    config = tmp_path / 'tiny.py'
    config.write_text(
        "custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)\n"
        f"model = dict(backbone=dict(type='CrossFormer', arch={TINY_ARCHS[CrossFormer]!r}, drop_path_rate=0.))\n")
    out = tmp_path / 'crossformer.pt2'
    environ = dict(os.environ, PYTHONPATH=ROOT)
    subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'deployment', 'export_backbone.py'), str(config),
                    '--format', 'export', '--shape', *map(str, EXPORT_SIZE), '--out', str(out)],
                   env=environ, check=True, capture_output=True, text=True)
    model = build_backbone(str(config))
    model.load_state_dict(torch.export.load(str(out)).state_dict)  # same weights as the exported graph
    x = torch.randn(1, 3, *EXPORT_SIZE)
    assert_outputs_close(torch.export.load(str(out)).module()(x), eager(model, x))


@pytest.mark.parametrize('spec', ['Crossformer:s', 'CrossFormer', 'CrossFormer:'])
def test_bad_model_names_are_rejected(spec):
    with pytest.raises(ValueError, match='Type:arch'):
        build_backbone(spec)
