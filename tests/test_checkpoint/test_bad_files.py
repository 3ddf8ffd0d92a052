"""Checkpoint files that cannot be read, and checkpoints of another family (issue 13, items 4 and 6)."""
import os
import re
from pathlib import Path

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader

from mmvit_backbones import checkpoint as ckpt
from mmvit_backbones.checkpoint import (
    CheckpointFileError,
    CheckpointMismatchError,
    detect_family,
    load_state_dict_loudly,
    read_checkpoint,
)
from mmvit_backbones.models.backbones import CrossFormer, PaleTransformer, SGFormer

KEY_FIXTURES = Path(__file__).resolve().parents[1] / 'fixtures' / 'keys'
TINY_SGFORMER = dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 1], num_heads=[2, 2, 4, 8])
TINY_CROSSFORMER = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])


def _zip_checkpoint(path: Path) -> bytes:
    torch.save({'state_dict': {'w': torch.arange(200.)}}, path)
    return path.read_bytes()


def _legacy_checkpoint(path: Path) -> bytes:
    torch.save({'state_dict': {'w': torch.arange(200.)}}, path, _use_new_zipfile_serialization=False)
    return path.read_bytes()


# name -> (bytes of the file, a phrase the error must contain)
BAD_FILES = {
    'empty': (lambda p: b'', 'is empty (0 bytes)'),
    'text': (lambda p: b'mmm, not weights\n', 'is a text file'),
    'git-lfs pointer': (lambda p: b'version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n',
                        'Git LFS pointer'),
    'html page': (lambda p: b'<!DOCTYPE html><html><body>404</body></html>', 'HTML page'),
    'random bytes': (lambda p: bytes(range(7, 256)) * 4, 'unknown format'),
    'truncated zip': (lambda p: _zip_checkpoint(p)[:600], 'truncated zip archive'),
    'truncated legacy pickle': (lambda p: _legacy_checkpoint(p)[:40], 'truncated or damaged legacy'),
}


@pytest.fixture
def no_unpickling(monkeypatch):
    """Fail the test if torch.load runs at all."""
    def refuse(*args, **kwargs):
        raise AssertionError(f'torch.load ran on a file that should have been refused: {args} {kwargs}')
    monkeypatch.setattr(torch, 'load', refuse)


@pytest.mark.parametrize('kind', BAD_FILES)
def test_bad_file_fails_with_path_and_fault_before_unpickling(kind, tmp_path, no_unpickling):
    make, phrase = BAD_FILES[kind]
    path = tmp_path / 'model.pth'
    content = make(tmp_path / 'source.pth')
    path.write_bytes(content)
    with pytest.raises(CheckpointFileError) as info:
        read_checkpoint(str(path))
    assert str(path) in str(info.value) and phrase in str(info.value)


@pytest.mark.parametrize('kind', ['empty', 'text', 'truncated zip'])
def test_bad_file_fails_the_same_through_mmengine(kind, tmp_path, no_unpickling):
    """``load_from`` / ``--resume`` / ``init_cfg`` go through mmengine's CheckpointLoader."""
    make, phrase = BAD_FILES[kind]
    path = tmp_path / 'model.pth'
    path.write_bytes(make(tmp_path / 'source.pth'))
    with pytest.raises(CheckpointFileError, match=re.escape(phrase)):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')


def test_legacy_file_cut_in_its_tensor_data_never_reaches_full_unpickling(tmp_path, monkeypatch):
    data = _legacy_checkpoint(tmp_path / 'source.pth')
    path = tmp_path / 'cut.pth'
    path.write_bytes(data[:-100])  # all pickles intact, the tensor bytes cut
    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs.get('weights_only'))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, 'load', recording_load)
    with pytest.raises(CheckpointFileError, match=re.escape(str(path))):
        read_checkpoint(str(path))
    assert calls == [True]  # only the restricted unpickler ran


def test_good_files_still_load(tmp_path):
    for make in (_zip_checkpoint, _legacy_checkpoint):
        loaded = read_checkpoint(str(tmp_path / 'x.pth')) if make(tmp_path / 'x.pth') else None
        assert torch.equal(loaded['state_dict']['w'], torch.arange(200.))


# -- which family a checkpoint holds --------------------------------------------------------------------


@pytest.mark.parametrize('fixture, family', [
    ('crossformer_s.txt', 'CrossFormer'), ('crossformer_s_v1_release.txt', 'CrossFormer'),
    ('crossformerpp_s.txt', 'CrossFormerPP'), ('sg_former_s.txt', 'SGFormer'), ('sg_former_b.txt', 'SGFormer')])
def test_detect_family_of_released_key_sets(fixture, family):
    keys = [line.split('\t')[0] for line in (KEY_FIXTURES / fixture).read_text().splitlines()]
    assert detect_family(keys) == family
    assert detect_family(['backbone.' + k for k in keys] + ['decode_head.conv_seg.weight']) == family


def test_detect_family_of_pale_and_of_strangers():
    keys = PaleTransformer(arch=dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                     num_heads=[2, 2, 4, 8])).state_dict()
    assert detect_family(keys) == 'PaleTransformer'
    assert detect_family(['conv1.weight', 'layer1.0.conv1.weight', 'layer1.0.bn1.weight']) is None
    assert detect_family([]) is None


# -- a checkpoint of another family, or an empty one: a short message -------------------------------------


def test_other_family_fails_with_a_short_summary_and_the_full_lists_in_a_file():
    model = SGFormer(arch=TINY_SGFORMER)
    other = CrossFormer(arch=TINY_CROSSFORMER).state_dict()
    with pytest.raises(CheckpointMismatchError) as info:
        load_state_dict_loudly(model, other, source='crossformer.pth')
    message = str(info.value)
    own = len(model.state_dict())
    first_line = message.splitlines()[0]
    assert first_line == f'crossformer.pth does not fit SGFormer: 0 of its {own} keys match; ' \
                         'this looks like a CrossFormer file.'
    assert len(message) < 2000, message
    assert f'missing keys ({own}): ' in message and f'({own - ckpt.MAX_KEYS_SHOWN} more)' in message
    report = Path(re.search(r'All keys: (\S+)', message).group(1))
    try:
        listed = report.read_text()
        assert all(key in listed for key in list(model.state_dict()) + list(other))
    finally:
        report.unlink()


def test_empty_checkpoint_says_it_holds_no_weights():
    model = SGFormer(arch=TINY_SGFORMER)
    with pytest.raises(CheckpointMismatchError) as info:
        load_state_dict_loudly(model, {}, source='empty.pth')
    first_line = str(info.value).splitlines()[0]
    assert first_line.startswith('empty.pth does not fit SGFormer: 0 of its')
    assert 'the checkpoint holds no weights' in first_line
    assert len(str(info.value)) < 1500
    report = re.search(r'All keys: (\S+)', str(info.value))
    if report:
        os.unlink(report.group(1))


def test_few_missing_keys_are_all_named_without_a_file():
    model = SGFormer(arch=TINY_SGFORMER)
    state_dict = model.state_dict()
    dropped = list(state_dict)[:2]
    for key in dropped:
        del state_dict[key]
    with pytest.raises(CheckpointMismatchError) as info:
        load_state_dict_loudly(model, state_dict, source='cut.pth')
    message = str(info.value)
    assert f'missing keys (2): {dropped[0]}, {dropped[1]}' in message
    assert 'looks like' not in message and 'All keys' not in message
