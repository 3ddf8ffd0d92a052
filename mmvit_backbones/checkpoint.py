"""Reading checkpoint files and loading them into backbones, loudly.

Two concerns live here, shared by every backbone family:

* **Trusted local loading on torch >= 2.6.** mmengine 0.10.7 calls
  ``torch.load`` without ``weights_only``, which torch 2.6 turned on by default:
  mmengine's own resume checkpoints (they pickle ``HistoryBuffer`` and numpy
  scalars) and the authors' released files (argparse/yacs objects) then fail to
  load. :mod:`mmvit_backbones.compat` makes :func:`load_trusted_local` mmengine's loader for
  *local paths only*: it first tries ``weights_only=True`` and falls back to a
  full unpickle only for a file on local disk that the user named (config or
  command line). Remote schemes (``http://``, ``s3://``, ``openmmlab://`` ...)
  keep mmengine's own loaders. Set ``MMVIT_WEIGHTS_ONLY=1`` to forbid the
  fallback. Only load local checkpoints you trust: unpickling runs code.
* **Key reporting.** :func:`load_state_dict_loudly` names every missing,
  unexpected or mis-shaped key and raises unless the caller opts out;
  :func:`fill_missing_output_norms` is the one allowed gap (output norms a
  checkpoint trained for other outputs does not have).
"""
import fnmatch
import functools
import logging
import os
import os.path as osp
import pickle
import pickletools
import re
import tempfile
import zipfile
from collections import OrderedDict
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Mapping,
    MutableMapping,
    Optional,
    Sequence,
    Set,
    Tuple,
)

import torch
from mmengine.logging import print_log
from torch import nn

#: Containers that wrap the model weights in checkpoint files, most preferred first:
#: timm's EMA weights (SG-Former's released files), mmengine / timm weights, the
#: CrossFormer / Swin-style ``{'model': ...}`` files.
STATE_DICT_CONTAINERS = ('state_dict_ema', 'state_dict', 'model')


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model: keys missing, unexpected or mis-shaped."""


class CheckpointFileError(ValueError):
    """A checkpoint file that is not a readable PyTorch checkpoint (empty, text, truncated ...)."""


#: The first bytes of the two formats ``torch.save`` writes: a zip archive
#: (torch >= 1.6) and the legacy stream of pickles (pickle protocol 2 and up).
_ZIP_MAGIC = b'PK\x03\x04'
_LEGACY_PICKLES = 5  # magic number, protocol, system info, the objects, the storage keys


def _describe_unknown_bytes(head: bytes) -> str:
    """Say what a file that is not a checkpoint looks like, from its first bytes."""
    text = head.decode('utf-8', errors='replace')
    if sum(ch.isprintable() or ch in '\t\r\n' for ch in text) < 0.9 * len(text):
        return f'it is no PyTorch checkpoint (unknown format, first bytes {head[:16].hex(" ")})'
    if text.startswith('version https://git-lfs'):
        return 'it is a Git LFS pointer, not the weights (run `git lfs pull`)'
    if text.lstrip().lower().startswith(('<!doctype html', '<html')):
        return 'it is an HTML page (a failed download?), not a PyTorch checkpoint'
    return f'it is a text file, not a PyTorch checkpoint (it starts with {text[:40]!r})'


def check_checkpoint_file(filename: str) -> None:
    """Raise :class:`CheckpointFileError` unless ``filename`` is a readable ``torch.save`` file.

    Only the file's structure is read, nothing is unpickled: the zip archive's
    directory and its ``data.pkl`` entry, or the opcodes of the legacy
    format's pickles (:func:`pickletools.genops` parses without executing).
    Empty, text, random and truncated files are caught here, each with the
    path and what is wrong with it.
    """
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    size = osp.getsize(filename)
    if size == 0:
        raise CheckpointFileError(f'checkpoint file {filename!r} is empty (0 bytes)')
    with open(filename, 'rb') as f:
        head = f.read(64)
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(filename) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise CheckpointFileError(f'checkpoint file {filename!r} ({size} bytes) is a damaged or truncated '
                                      f'zip archive: {err}') from err
        if not any(name == 'data.pkl' or name.endswith('/data.pkl') for name in names):
            raise CheckpointFileError(f'checkpoint file {filename!r} is a zip archive without data.pkl, '
                                      'not a torch.save file')
        return
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        with open(filename, 'rb') as f:
            try:
                for _ in range(_LEGACY_PICKLES):
                    for _op in pickletools.genops(f):
                        pass
            except Exception as err:  # genops raises ValueError or struct.error on a cut or bad stream
                raise CheckpointFileError(f'checkpoint file {filename!r} ({size} bytes) is a truncated or '
                                          f'damaged legacy torch.save file: {err or type(err).__name__}') from err
        return
    raise CheckpointFileError(f'checkpoint file {filename!r} cannot be read: {_describe_unknown_bytes(head)}')


def _refused_by_weights_only(err: Exception) -> bool:
    """True when ``torch.load(weights_only=True)`` failed only because the file holds other Python objects."""
    return isinstance(err, pickle.UnpicklingError) and 'Weights only load failed' in str(err)


def load_trusted_local(filename: str, map_location: Any = None) -> Any:
    """Load a local checkpoint file, allowing full unpickling as a fallback.

    The file is checked first (:func:`check_checkpoint_file`); only a
    well-formed file that ``weights_only=True`` refuses for holding Python
    objects besides tensors is unpickled in full.

    Args:
        filename (str): Path of a local file the user chose to load.
        map_location: As for :func:`torch.load`.
    """
    filename = osp.expanduser(filename)
    check_checkpoint_file(filename)
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as err:
        if not _refused_by_weights_only(err):
            raise CheckpointFileError(f'checkpoint file {filename!r} cannot be read: '
                                      f'{type(err).__name__}: {err}') from err
        if os.environ.get('MMVIT_WEIGHTS_ONLY', '0') not in ('', '0'):
            raise pickle.UnpicklingError(
                f'{filename!r} holds Python objects besides tensors and '
                'MMVIT_WEIGHTS_ONLY is set, so it is not unpickled. Unset '
                'MMVIT_WEIGHTS_ONLY if you trust this file.') from err
    print_log(f'{filename} holds Python objects besides tensors; loading it '
              'as a trusted local file (weights_only=False).',
              logger='current', level=logging.DEBUG)
    return torch.load(filename, map_location=map_location, weights_only=False)


def read_checkpoint(filename: str, map_location: Any = 'cpu') -> Any:
    """Read a checkpoint (any scheme mmengine knows) without loading it anywhere.

    A local path goes through :func:`load_trusted_local` (checked before
    anything is unpickled), whether or not the loader is installed in mmengine.
    """
    if '://' not in filename:
        return load_trusted_local(filename, map_location=map_location)
    from mmengine.runner.checkpoint import CheckpointLoader
    return CheckpointLoader.load_checkpoint(filename, map_location=map_location)


def extract_state_dict(checkpoint: Any, prefix: Optional[str] = None) -> 'OrderedDict[str, torch.Tensor]':
    """Find the weights inside a checkpoint object.

    Takes the first of ``state_dict_ema``, ``state_dict`` and ``model`` that is
    present (else the object itself), strips the ``module.`` prefix of
    (Distributed)DataParallel and, when ``prefix`` is given (e.g. ``'backbone.'``
    for a whole detector), keeps only the keys under it, prefix removed.
    """
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f'a checkpoint must be a dict, got {type(checkpoint).__name__}')
    state_dict = checkpoint
    for container in STATE_DICT_CONTAINERS:
        if isinstance(checkpoint.get(container), Mapping):
            state_dict = checkpoint[container]
            break
    state_dict = OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v) for k, v in state_dict.items())
    if prefix:
        selected = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items() if k.startswith(prefix))
        if not selected:
            raise CheckpointMismatchError(f'no key of the checkpoint starts with prefix {prefix!r}')
        state_dict = selected
    return state_dict


def fill_missing_output_norms(module: nn.Module, state_dict: MutableMapping[str, torch.Tensor],
                              norm_names: Iterable[str]) -> List[str]:
    """Give output norms that a checkpoint lacks the module's own initial weights.

    A checkpoint trained with other ``out_indices`` (or a released classifier,
    which has no per-stage output norms) lacks some of the output norms of a
    dense-prediction backbone. Each named submodule of which the checkpoint has
    *no* key at all takes its tensors from ``module.state_dict()`` (its fresh
    initialisation, as when fine-tuning), and the names are logged. A norm the
    checkpoint has in part, and every other key, is left alone, so that the
    loader still reports it as missing, unexpected or mis-shaped.

    Args:
        module (nn.Module): The backbone that will load ``state_dict``.
        state_dict (MutableMapping): Converted weights, updated in place.
        norm_names (Iterable[str]): Names of the output-norm submodules of
            ``module`` (e.g. ``['norm0', 'norm3']``).

    Returns:
        list[str]: The sorted names of the norms that were filled in.
    """
    own = module.state_dict()
    present = {key.split('.')[0] for key in state_dict}
    filled = sorted((set(norm_names) & {key.split('.')[0] for key in own}) - present)
    if filled:
        state_dict.update((k, v) for k, v in own.items() if k.split('.')[0] in filled)
        print_log(f'{type(module).__name__}: the checkpoint has no output norms {", ".join(filled)}; '
                  'they keep their initialisation.', logger='current')
    return filled


#: The backbone families of this plugin, by class name, for telling which one a checkpoint holds.
FAMILIES = ('SGFormer', 'PaleTransformer', 'CrossFormer', 'CrossFormerPP')
#: Share of key templates a checkpoint must have in common with a family to be called one of it.
_FAMILY_THRESHOLD = 0.5


def _key_template(key: str) -> str:
    """A key with every index replaced by ``#``: the same for every arch of a family."""
    return re.sub(r'\d+', '#', key)


def _family_relevant(templates: Iterable[str]) -> Set[str]:
    # A classifier's head and final norm are shared by every family (and optional): they tell nothing.
    return {t for t in templates if not t.startswith('head.') and t not in ('norm.weight', 'norm.bias')}


@functools.lru_cache(maxsize=None)
def family_key_templates(family: str) -> FrozenSet[str]:
    """The key templates (indices as ``#``) of a backbone family, from its first arch built on CPU."""
    from mmvit_backbones.models import backbones  # imported here: the backbones import this module
    if family not in FAMILIES:
        raise ValueError(f'unknown backbone family {family!r}; valid: {", ".join(FAMILIES)}')
    cls = getattr(backbones, family)
    model = cls(arch=next(iter(cls.arch_zoo)))
    return frozenset(_family_relevant(_key_template(k) for k in model.state_dict()))


def count_family_keys(keys: Iterable[str], family: str) -> int:
    """How many of ``keys`` (backbone keys, any arch) are keys of ``family``."""
    templates = family_key_templates(family)
    return sum(_key_template(k) in templates for k in keys)


def detect_family(keys: Iterable[str]) -> Optional[str]:
    """Which backbone family of this plugin the keys of a state dict belong to, or None.

    A whole detector / segmentor / classifier is judged by its ``backbone.*``
    keys. The family whose key templates (indices as ``#``, so any arch) overlap
    most with the keys' templates wins (intersection over union, at least 0.5):
    CrossFormer++ and CrossFormer share all CrossFormer keys, and the union
    tells them apart by the amplitude cooling layers.
    """
    keys = list(keys)
    if any(k.startswith('backbone.') for k in keys):
        keys = [k[len('backbone.'):] for k in keys if k.startswith('backbone.')]
    ours = _family_relevant(_key_template(k) for k in keys)
    if not ours:
        return None
    scores = {}
    for family in FAMILIES:
        theirs = family_key_templates(family)
        scores[family] = len(ours & theirs) / len(ours | theirs)
    best = max(scores, key=scores.get)
    return best if scores[best] >= _FAMILY_THRESHOLD else None


def describe_family(keys: Iterable[str]) -> str:
    """``'this looks like a CrossFormer file'`` or a line saying it is none of this plugin's families."""
    keys = list(keys)
    if not keys:
        return 'the checkpoint holds no weights'
    family = detect_family(keys)
    if family is None:
        return f'it is not a checkpoint of any family of this plugin ({", ".join(FAMILIES)})'
    return f'this looks like a {family} file'


def check_family(state_dict: Mapping[str, Any], families: Sequence[str], source: str) -> str:
    """Raise :class:`CheckpointMismatchError` unless ``state_dict`` belongs to one of ``families``.

    Returns the family found. The message leads with how many keys match,
    e.g. ``0 of 344 keys match SGFormer; this looks like a CrossFormer file``.
    """
    family = detect_family(state_dict)
    if family in families:
        return family
    expected = families[0]
    keys = list(state_dict)
    raise CheckpointMismatchError(
        f'{source}: {count_family_keys(keys, expected)} of {len(keys)} keys match {" / ".join(families)}; '
        f'{describe_family(keys)}')


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


#: How many keys of each kind a mismatch message names; the full lists go to the debug log and a file.
MAX_KEYS_SHOWN = 5


def _first_keys(keys: Sequence[str]) -> str:
    shown = ', '.join(keys[:MAX_KEYS_SHOWN])
    return shown + (f', ... ({len(keys) - MAX_KEYS_SHOWN} more)' if len(keys) > MAX_KEYS_SHOWN else '')


def _mismatch_summary(name: str, own: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor],
                      report: Mapping[str, list], source: str) -> str:
    """A short message: how many keys fit, which family the checkpoint looks like, a few keys of each kind.

    When a list is cut, all lists are logged at debug level and written to a
    temporary file, named in the message.
    """
    missing, unexpected, mismatched = report['missing'], report['unexpected'], report['mismatched']
    fitting = len(own) - len(missing) - len(mismatched)
    summary = f'{source} does not fit {name}: {fitting} of its {len(own)} keys match'
    if not state_dict:
        summary += '; the checkpoint holds no weights'
    else:
        family = detect_family(state_dict)
        if family is not None and family != detect_family(own):
            summary += f'; this looks like a {family} file'
    lines = [summary + '.']
    if missing:
        lines.append(f'missing keys ({len(missing)}): {_first_keys(missing)}')
    if unexpected:
        lines.append(f'unexpected keys ({len(unexpected)}): {_first_keys(unexpected)}')
    if mismatched:
        lines.append(f'mis-shaped keys ({len(mismatched)}, checkpoint vs model): ' + _first_keys(
            [f'{k} {list(a)} vs {list(b)}' for k, a, b in mismatched]))
    if max(len(missing), len(unexpected), len(mismatched)) > MAX_KEYS_SHOWN:
        full = '\n'.join([summary] + [f'{kind} ({len(keys)}):\n' + '\n'.join(map(str, keys))
                                      for kind, keys in (('missing', missing), ('unexpected', unexpected),
                                                         ('mis-shaped', mismatched)) if keys])
        print_log(full, logger='current', level=logging.DEBUG)
        with tempfile.NamedTemporaryFile('w', prefix='mmvit-key-report-', suffix='.txt', delete=False) as f:
            f.write(full + '\n')
        lines.append(f'All keys: {f.name}')
    return '\n'.join(lines)


def load_state_dict_loudly(module: nn.Module,
                           state_dict: Mapping[str, torch.Tensor],
                           expected_extra: Iterable[str] = (),
                           strict: bool = True,
                           source: str = 'checkpoint',
                           opt_out: str = 'Pass strict=False in init_cfg to load what fits anyway.'
                           ) -> Dict[str, List]:
    """Load ``state_dict`` into ``module`` and report every key that does not fit.

    Args:
        module (nn.Module): The model to load into.
        state_dict (Mapping): Weights already converted to the module's names.
        expected_extra (Iterable[str]): Glob patterns of checkpoint keys that are
            known not to belong to ``module`` (e.g. a classification head loaded
            into a backbone). They are dropped with an info message, not an error.
        strict (bool): Raise :class:`CheckpointMismatchError` on missing,
            unexpected or mis-shaped keys. With False they are logged as a warning
            and everything that fits is loaded.
        source (str): What to call the checkpoint in messages (its path).
        opt_out (str): The last line of the error: how the user turns
            ``strict`` off where the loading was asked for.

    The message leads with a summary (how many of the model's keys the
    checkpoint fits, and which family of this plugin it looks like when it is
    another one), then names at most :data:`MAX_KEYS_SHOWN` keys of each kind;
    the full lists go to the debug log and to a file named in the message.

    Returns:
        dict: ``missing``, ``unexpected``, ``mismatched`` and ``ignored`` key lists.
    """
    expected_extra = tuple(expected_extra)
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    ignored = [k for k in state_dict if k not in own and _matches(k, expected_extra)]
    unexpected = [k for k in state_dict if k not in own and k not in ignored]
    mismatched: List[Tuple[str, tuple, tuple]] = [
        (k, tuple(state_dict[k].shape), tuple(own[k].shape)) for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    report = dict(missing=missing, unexpected=unexpected, mismatched=mismatched, ignored=ignored)
    name = type(module).__name__
    if missing or unexpected or mismatched:
        message = _mismatch_summary(name, own, state_dict, report, source)
        if strict:
            raise CheckpointMismatchError(f'{message}\n{opt_out}')
        print_log(message, logger='current', level=logging.WARNING)
    if ignored:
        print_log(f'{source}: ignored {len(ignored)} keys that {name} does not use '
                  f'({", ".join(sorted({k.split(".")[0] for k in ignored}))}).',
                  logger='current', level=logging.INFO)
    bad = {k for k, _, _ in mismatched}
    module.load_state_dict(
        OrderedDict((k, v) for k, v in state_dict.items() if k in own and k not in bad), strict=False)
    return report


def load_pretrained(module: nn.Module,
                    filename: str,
                    convert: Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]],
                    expected_extra: Iterable[str] = (),
                    strict: bool = True,
                    prefix: Optional[str] = None) -> Dict[str, List]:
    """Read ``filename``, convert its weights with ``convert`` and load them loudly."""
    state_dict = extract_state_dict(read_checkpoint(filename), prefix=prefix)
    state_dict = convert(state_dict)
    print_log(f'load {type(module).__name__} weights from {filename}', logger='current')
    return load_state_dict_loudly(module, state_dict, expected_extra, strict=strict, source=filename)


def from_whole_model_state_dict(state_dict: Mapping[str, Any]) -> 'OrderedDict[str, Any]':
    """The backbone (and linear head) keys of a whole detector / segmentor / classifier.

    The one place that handles whole-model prefixes for every family:
    ``backbone.*`` loses its prefix and an mmpretrain ``head.fc.*`` becomes
    ``head.*`` (the inverse of :func:`to_classifier_state_dict`), in their
    order; necks and dense heads are dropped. A state dict with no
    ``backbone.`` key is returned unchanged.
    """
    if not any(k.startswith('backbone.') for k in state_dict):
        return OrderedDict(state_dict)
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('backbone.'):
            out[key[len('backbone.'):]] = value
        elif key.startswith('head.fc.'):
            out['head.' + key[len('head.fc.'):]] = value
    return out


def to_classifier_state_dict(state_dict: Mapping[str, torch.Tensor],
                             head_prefix: str = 'head.') -> 'OrderedDict[str, torch.Tensor]':
    """Lay a converted backbone state dict out as an mmpretrain ``ImageClassifier``.

    Backbone keys go under ``backbone.``; the linear head ``head.{weight,bias}``
    becomes ``head.fc.{weight,bias}`` (mmpretrain's ``LinearClsHead``).
    """
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith(head_prefix):
            out['head.fc.' + key[len(head_prefix):]] = value
        else:
            out['backbone.' + key] = value
    return out


def convert_checkpoint_file(src: str, dst: str,
                            convert: Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]],
                            classifier: bool = False,
                            families: Sequence[str] = ()) -> 'OrderedDict[str, torch.Tensor]':
    """Offline conversion shared by ``tools/model_converters/*2mmvit.py``.

    Reads ``src`` (any format ``convert`` accepts), writes ``{'state_dict': ...}``
    to ``dst`` in this project's backbone layout, or the whole mmpretrain
    classifier layout with ``classifier=True``. The output holds tensors only,
    so it loads with ``torch.load(weights_only=True)``. With ``families``
    (class names, e.g. ``('SGFormer', )``) the converted weights must belong to
    one of them (:func:`check_family`), else nothing is written.
    """
    state_dict = convert(extract_state_dict(read_checkpoint(src)))
    if families:
        check_family(state_dict, families, src)
    if classifier:
        state_dict = to_classifier_state_dict(state_dict)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save({'state_dict': OrderedDict(state_dict), 'meta': {'converted_from': osp.basename(src)}}, dst)
    return OrderedDict(state_dict)
