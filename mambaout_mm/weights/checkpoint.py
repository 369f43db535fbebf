"""MambaOut weights in every published layout, converted in one place and loaded with checks.

Layouts understood:

* official: plain state_dict with the official module names (``downsample_layers.*``,
  ``stages.N.M.*``, ``norm.*``, ``head.fc1/norm/fc2.*``), as released on GitHub;
* timm: ``stem.*``, ``stages.N.downsample.*``, ``stages.N.blocks.M.*``, ``head.*`` (``.pth`` or
  ``.safetensors``), including the ``*_rw`` variants;
* mmengine: a ``state_dict`` (or ``model``) wrapper with ``backbone.`` (and ``module.``)
  prefixes, as saved by training a detector or segmentor.

Everything is converted to the official layout, which the core model and the backbone share.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from ..models.mambaout import ARCH_SETTINGS, resolve_arch, variants
from ..utils.errors import CheckpointMismatchError, CheckpointNotFoundError, CheckpointReadError
from . import safe_load

OFFICIAL_RELEASE = 'https://github.com/yuweihao/MambaOut/releases/download/model'

#: timm key prefix -> official key prefix (first match wins; applied after the stage rules).
_TIMM_HEAD_TO_OFFICIAL = (
    ('head.pre_logits.fc.', 'head.fc1.'),
    ('head.pre_logits.norm.', 'head.norm.'),
    ('head.norm.', 'norm.'),
    ('head.fc.', 'head.fc2.'),
)
#: keys of the classification head in the official layout (a backbone has none of them).
CLASSIFIER_PREFIXES = ('norm.', 'head.')
#: keys a dense-prediction backbone adds to the trunk (its per-stage output norms).
OUTPUT_NORM_PATTERN = re.compile(r'^norm\d+\.')


def read_checkpoint(source: str | Path, map_location: str | None = 'cpu') -> Any:
    """Load a checkpoint without running pickled code: a local ``.pth``/``.pt``/``.safetensors``
    file, an ``http(s)://`` URL (downloaded once into torch's hub cache, as mmengine does), or
    anything else mmengine's ``CheckpointLoader`` reads (its other schemes)."""
    source = local_checkpoint(source)
    if '://' in source:
        from mmengine.runner import CheckpointLoader
        return CheckpointLoader.load_checkpoint(source, map_location=map_location)
    path = Path(source)
    if not path.is_file():
        raise CheckpointNotFoundError(
            f'MambaOut checkpoint not found: {path}. Download the official ImageNet weights, e.g. '
            f'`wget -P {path.parent} {OFFICIAL_RELEASE}/{path.name}` (files mambaout_'
            f'{{{",".join(variants("official"))}}}.pth), or point the config at your file '
            f"(init_cfg=dict(type='Pretrained', checkpoint=...)).")
    if path.suffix == '.safetensors':
        from safetensors.torch import load_file
        return load_file(str(path), device=map_location or 'cpu')
    return safe_load.load(path, map_location)


def local_checkpoint(source: str | Path, must_exist: bool = False) -> str:
    """Where ``source`` is read from: a local path (``file://`` stripped; an existing file is
    checked with :func:`check_checkpoint_file`), the downloaded copy of an ``http(s)://`` URL, or
    another mmengine scheme as it is. A missing local file raises
    :class:`~mambaout_mm.utils.errors.CheckpointNotFoundError` with ``must_exist``, else is
    returned for the caller to report."""
    source = str(source)
    if source.startswith(('http://', 'https://')):
        source = download_checkpoint(source)
    elif '://' in source and not source.startswith('file://'):
        return source
    source = source.removeprefix('file://')
    if Path(source).is_file():
        check_checkpoint_file(source)
    elif must_exist:
        raise CheckpointNotFoundError(f'checkpoint not found: {source}')
    return source


def download_path(url: str) -> Path:
    """Where the copy of ``url`` is kept: torch's hub cache (``$TORCH_HOME/hub/checkpoints``, where
    mmengine's ``load_from_http`` keeps it), under the URL's file name; a Hugging Face file
    (``.../timm/NAME/resolve/main/model.safetensors``) under ``NAME_model.safetensors``."""
    import torch.hub
    parts = url.split('?')[0].rstrip('/').split('/')
    name = parts[-1] or 'checkpoint.pth'
    if 'resolve' in parts[3:-1]:  # huggingface.co/ORG/NAME/resolve/REVISION/FILE
        name = f'{parts[parts.index("resolve") - 1]}_{name}'
    return Path(torch.hub.get_dir()) / 'checkpoints' / name


def download_checkpoint(url: str) -> str:
    """The local copy of ``url`` (:func:`download_path`), downloaded on first use."""
    import os

    import torch.hub
    path = download_path(url)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + f'.partial{os.getpid()}')
        try:
            torch.hub.download_url_to_file(url, str(partial), progress=False)
        except OSError as err:  # urllib's URLError and HTTPError are OSErrors
            partial.unlink(missing_ok=True)
            raise CheckpointReadError(
                f'Could not download the checkpoint {url} ({err}). Without network, download it '
                f'on another machine (`wget {url}`) and copy it to {path}, where it is looked for '
                f'first, or give the local path instead of the URL.') from None
        partial.replace(path)
    return str(path)


def check_checkpoint_file(path: str | Path, remedy: str | None = None) -> None:
    """Raise :class:`CheckpointReadError` naming ``path`` if it cannot be a readable checkpoint:
    empty, an HTML page (a failed download), or a truncated zip archive (a download, or a save
    killed, cut short); ``remedy`` is the way out it names (default: download it again)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, 'rb') as f:
        head = f.read(64)
    redownload = (remedy or 'Download it again (and compare its size with the source\'s).'
                  ).removesuffix('.')
    if size == 0:
        raise CheckpointReadError(f'{path} is empty (0 bytes). {redownload}.')
    if head.lstrip().lower().startswith((b'<!doctype', b'<html', b'<?xml', b'{"', b'not found')):
        raise CheckpointReadError(
            f'{path} is a text/HTML page ({size} bytes), not a checkpoint: probably an error '
            f'page saved by a failed download. {redownload}.')
    if path.suffix == '.safetensors':
        return
    if head.startswith(b'PK'):
        import zipfile
        try:
            with zipfile.ZipFile(path) as archive:
                archive.infolist()
        except zipfile.BadZipFile:
            raise CheckpointReadError(
                f'{path} is a truncated or damaged PyTorch checkpoint ({size} bytes: its zip '
                f'directory is missing). {redownload}.') from None
    elif not head.startswith(b'\x80'):  # neither torch's zip format nor a (legacy) pickle
        raise CheckpointReadError(
            f'{path} is not a PyTorch checkpoint ({size} bytes starting with {head[:16]!r}). '
            f'Give a .pth/.pt file saved by torch.save, or a .safetensors file.')


def extract_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """The tensors of a plain state_dict or of an mmengine/official training checkpoint."""
    if isinstance(obj, Mapping):
        for wrapper in ('state_dict', 'model'):
            if wrapper in obj and isinstance(obj[wrapper], Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not all(torch.is_tensor(v) for v in obj.values()):
        raise CheckpointMismatchError(
            'Not a state_dict: expected a mapping of names to tensors, or one under a '
            f"'state_dict'/'model' key; got {type(obj).__name__}.")
    return dict(obj)


def is_timm_layout(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith('stem.') or re.match(r'stages\.\d+\.(blocks|downsample)\.', k)
               for k in state_dict)


def source_layout(state_dict: Mapping[str, torch.Tensor]) -> str:
    """``'mmengine'`` (``backbone.`` keys of a detector/segmentor), ``'timm'`` or ``'official'``."""
    keys = [re.sub(r'^module\.', '', k) for k in state_dict]
    if any(k.startswith('backbone.') for k in keys):
        return 'mmengine'
    return 'timm' if is_timm_layout(dict.fromkeys(keys)) else 'official'


def timm_to_official(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename timm's MambaOut keys to the official ones (the inverse of timm's filter)."""
    out = {}
    for key, value in state_dict.items():
        key = re.sub(r'^stem\.', 'downsample_layers.0.', key)
        key = re.sub(r'^stages\.(\d+)\.downsample\.', r'downsample_layers.\1.', key)
        key = re.sub(r'^stages\.(\d+)\.blocks\.(\d+)\.', r'stages.\1.\2.', key)
        for old, new in _TIMM_HEAD_TO_OFFICIAL:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def to_official_layout(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Any supported layout -> official names (``module.``/``backbone.`` prefixes removed;
    from a whole detector or segmentor only the backbone is kept)."""
    sd = {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}
    if source_layout(sd) == 'mmengine':
        sd = {k[len('backbone.'):]: v for k, v in sd.items() if k.startswith('backbone.')}
    return timm_to_official(sd) if source_layout(sd) == 'timm' else sd


def infer_arch(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The variant in ``ARCH_SETTINGS`` whose parameter shapes an official-layout state_dict has."""
    def shape(key: str) -> tuple[int, ...] | None:
        return tuple(state_dict[key].shape) if key in state_dict else None

    for name in ARCH_SETTINGS:
        s = resolve_arch(name)
        fits = [shape(f'stages.{i}.{depth - 1}.fc2.weight')
                == (dim, int(s['expansion_ratio'] * dim))
                and shape(f'stages.{i}.{depth}.fc2.weight') is None
                for i, (depth, dim) in enumerate(zip(s['depths'], s['dims']))]
        fits += [
            shape('stages.0.0.conv.weight') == (int(s['conv_ratio'] * s['dims'][0]), 1,
                                                s['kernel_size'], s['kernel_size']),
            ('downsample_layers.0.norm1.weight' in state_dict) == s['stem_mid_norm'],
            ('stages.0.0.ls.gamma' in state_dict) == (s['ls_init_value'] is not None),
        ]
        if all(fits):
            return name
    return None


def _listing(keys: list[str], limit: int = 8) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys)} in all)' if len(keys) > limit else '')


def _by_module(keys: list[str], universe: Iterable[str]) -> list[str]:
    """``keys``, a top-level module all of whose tensors in ``universe`` are among them named
    once (``neck.* (16 tensors)``): what a checkpoint of another model lacks reads at a glance."""
    counts = Counter(k.split('.')[0] for k in universe)
    listed = Counter(k.split('.')[0] for k in keys)
    whole = {m for m, n in listed.items() if n == counts[m] and n > 1}
    shown = []
    for key in keys:
        module = key.split('.')[0]
        if module not in whole:
            shown.append(key)
        elif f'{module}.* ({listed[module]} tensors)' not in shown:
            shown.append(f'{module}.* ({listed[module]} tensors)')
    return shown


def _differences(own: Mapping[str, torch.Tensor], source: Mapping[str, torch.Tensor],
                 missing: list[str], unexpected: list[str],
                 by_module: bool = False) -> tuple[list[str], list[str]]:
    """The keys of ``own`` that ``source`` has with the same shape, and, where anything else
    differs (``missing``, ``unexpected``, a shape), what differs, listed for a message (whole
    modules once with ``by_module``)."""
    if by_module:
        missing, unexpected = _by_module(missing, own), _by_module(unexpected, source)
    fits = [k for k in own if k in source and source[k].shape == own[k].shape]
    mismatched = [f'{k}: checkpoint {tuple(source[k].shape)} vs model {tuple(own[k].shape)}'
                  for k in own if k in source and source[k].shape != own[k].shape]
    if not (mismatched or unexpected or missing) and fits:
        return fits, []
    problems = [f'{len(fits)} of {len(own)} model tensors matched']
    if mismatched:
        problems.append(f'shape mismatches: {_listing(mismatched, 4)}')
    if missing:
        problems.append(f'missing from the checkpoint: {_listing(missing)}')
    if unexpected:
        problems.append(f'not in the model: {_listing(unexpected)}')
    return fits, problems


def check_weights(own: Mapping[str, torch.Tensor], source: Mapping[str, torch.Tensor],
                  what: str = 'MambaOut checkpoint',
                  ignore_prefixes: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Match official-layout ``source`` tensors to a model's state_dict ``own`` by name and shape.

    Keys the model lacks are tolerated only under ``ignore_prefixes`` and keys the source lacks only
    for the backbone's output norms. Anything else, and any shape mismatch, raises
    :class:`CheckpointMismatchError` naming the keys, the shapes and the variant ``source`` looks
    like (``what`` names the source in the message). Returns the keys loaded, dropped and fresh.
    """
    dropped = [k for k in source if k not in own and k.startswith(ignore_prefixes)]
    unexpected = [k for k in source if k not in own and k not in dropped]
    fresh = [k for k in own if k not in source and OUTPUT_NORM_PATTERN.match(k)]
    missing = [k for k in own if k not in source and k not in fresh]
    loaded, problems = _differences(own, source, missing, unexpected)
    if problems:
        guess = infer_arch(source)
        hint = (f"The checkpoint looks like arch='{guess}'; build the model with that arch."
                if guess else 'Check that the file is a MambaOut checkpoint of the right variant.')
        raise CheckpointMismatchError(
            f'{what} does not fit the model: ' + '; '.join(problems) + f'. {hint}')
    return dict(loaded=loaded, dropped=dropped, fresh=fresh)


def model_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """The tensors of a whole-model checkpoint (mmengine's, or a plain state_dict), with the
    ``module.`` prefix of a distributed wrapper removed, as mmengine's loader removes it."""
    return {re.sub(r'^module\.', '', k): v for k, v in extract_state_dict(obj).items()}


def fit_model_weights(own: Mapping[str, torch.Tensor], source: Mapping[str, torch.Tensor],
                      what: str, partial: bool = False,
                      logger: logging.Logger | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a whole-model checkpoint ``source`` to load into a model whose state_dict
    is ``own``: all of them, where the names and shapes are the model's.

    A checkpoint that does not fit raises :class:`CheckpointMismatchError` saying what matched and
    what did not (``what`` names the checkpoint), unless ``partial``: then the tensors that fit are
    returned and the rest listed in the log (fine-tuning on other classes); with none fitting it
    raises still. This is the one check of every whole-model load of the tools (test, demo,
    export, benchmark, resume: :class:`mambaout_mm.engine.checkpoint_fit.CheckpointFitHook`).
    """
    missing = [k for k in own if k not in source]
    unexpected = [k for k in source if k not in own]
    fits, problems = _differences(own, source, missing, unexpected, by_module=True)
    if not problems:
        return dict(source)
    if partial and fits:
        left = _by_module([k for k in own if k not in fits], own)
        unused = _by_module(unexpected, source)
        (logger or logging.getLogger(__name__)).warning(
            f'Loaded {len(fits)} of {len(own)} model tensors from {what} (a partial load); '
            f'left at initialisation: {_listing(left)}'
            + (f'; not used: {_listing(unused)}' if unused else '') + '.')
        return {k: source[k] for k in fits}
    theirs, ours = (infer_arch(to_official_layout(sd)) for sd in (source, own))
    hint = (f"Its backbone is MambaOut-{theirs}, the model's MambaOut-{ours}. "
            if theirs and ours and theirs != ours else '')
    raise CheckpointMismatchError(
        f'{what} does not fit the model: ' + '; '.join(problems) + f'. {hint}Give a checkpoint '
        f'saved by training this config (or the config it was trained with); to start training '
        f'from the tensors that fit, give it as load_from to tools/train.py.')


def load_model_checkpoint(model: nn.Module, source: str | Path, partial: bool = False,
                          logger: logging.Logger | None = None) -> Any:
    """Load a whole detector's or segmentor's checkpoint (a path or URL, read safely) into
    ``model`` through :func:`fit_model_weights`; returns the checkpoint (for its ``meta``)."""
    saved = read_checkpoint(source)
    weights = fit_model_weights(model.state_dict(), model_state_dict(saved),
                                f'The checkpoint {source}', partial, logger)
    model.load_state_dict(weights, strict=not partial)
    return saved


def load_mambaout_weights(model: nn.Module, path: str | Path,
                          logger: logging.Logger | None = None,
                          ignore_prefixes: tuple[str, ...] = (),
                          map_location: str | None = 'cpu') -> dict[str, list[str]]:
    """Load a MambaOut checkpoint of any layout into ``model`` (a trunk or a classifier).

    Keys the model lacks are tolerated only under ``ignore_prefixes`` (e.g. the classification
    head, for a backbone) and keys the checkpoint lacks only for the backbone's output norms
    (which the classification weights do not have). Anything else, and any shape mismatch, raises
    :class:`CheckpointMismatchError` naming the keys and shapes (see :func:`check_weights`).
    Returns what was loaded, dropped and left at initialisation.
    """
    logger = logger or logging.getLogger(__name__)
    source = to_official_layout(extract_state_dict(read_checkpoint(path, map_location)))
    report = check_weights(model.state_dict(), source, f'MambaOut checkpoint {path}',
                           ignore_prefixes)
    loaded, dropped, fresh = report['loaded'], report['dropped'], report['fresh']
    model.load_state_dict({k: source[k] for k in loaded}, strict=False)
    logger.info(f'Loaded {len(loaded)} MambaOut tensors from {path}.')
    if dropped:
        logger.info(f'Dropped {len(dropped)} tensors the model does not use: {_listing(dropped)}.')
    if fresh:
        logger.info(f'Initialised {len(fresh)} tensors not in the checkpoint: {_listing(fresh)}.')
    return report
