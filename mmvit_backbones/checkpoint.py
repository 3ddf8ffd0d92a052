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
import logging
import os
import os.path as osp
import pickle
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, List, Mapping, MutableMapping, Optional, Tuple

import torch
from mmengine.logging import print_log
from torch import nn

#: Containers that wrap the model weights in checkpoint files, most preferred first:
#: timm's EMA weights (SG-Former's released files), mmengine / timm weights, the
#: CrossFormer / Swin-style ``{'model': ...}`` files.
STATE_DICT_CONTAINERS = ('state_dict_ema', 'state_dict', 'model')


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model: keys missing, unexpected or mis-shaped."""


def load_trusted_local(filename: str, map_location: Any = None) -> Any:
    """Load a local checkpoint file, allowing full unpickling as a fallback.

    Args:
        filename (str): Path of a local file the user chose to load.
        map_location: As for :func:`torch.load`.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
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
    """Read a checkpoint (any scheme mmengine knows) without loading it anywhere."""
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


def strip_backbone_prefix(state_dict: Mapping[str, Any]) -> 'OrderedDict[str, Any]':
    """Keep the ``backbone.*`` part of a whole detector / segmentor / classifier.

    A state dict with no ``backbone.`` key is returned unchanged.
    """
    if not any(k.startswith('backbone.') for k in state_dict):
        return OrderedDict(state_dict)
    return OrderedDict((k[len('backbone.'):], v) for k, v in state_dict.items() if k.startswith('backbone.'))


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


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def load_state_dict_loudly(module: nn.Module,
                           state_dict: Mapping[str, torch.Tensor],
                           expected_extra: Iterable[str] = (),
                           strict: bool = True,
                           source: str = 'checkpoint') -> Dict[str, List]:
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
    problems = []
    if missing:
        problems.append(f'missing keys ({len(missing)}): {", ".join(missing)}')
    if unexpected:
        problems.append(f'unexpected keys ({len(unexpected)}): {", ".join(unexpected)}')
    if mismatched:
        problems.append('mis-shaped keys (checkpoint vs model): ' + ', '.join(
            f'{k} {list(a)} vs {list(b)}' for k, a, b in mismatched))
    name = type(module).__name__
    if problems:
        message = f'{source} does not fit {name}: ' + '; '.join(problems)
        if strict:
            raise CheckpointMismatchError(
                message + '. Pass strict=False in init_cfg to load what fits anyway.')
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
                            classifier: bool = False) -> 'OrderedDict[str, torch.Tensor]':
    """Offline conversion shared by ``tools/model_converters/*2mmvit.py``.

    Reads ``src`` (any format ``convert`` accepts), writes ``{'state_dict': ...}``
    to ``dst`` in this project's backbone layout, or the whole mmpretrain
    classifier layout with ``classifier=True``. The output holds tensors only,
    so it loads with ``torch.load(weights_only=True)``.
    """
    state_dict = convert(extract_state_dict(read_checkpoint(src)))
    if classifier:
        state_dict = to_classifier_state_dict(state_dict)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save({'state_dict': OrderedDict(state_dict), 'meta': {'converted_from': osp.basename(src)}}, dst)
    return OrderedDict(state_dict)
