"""Checkpoint conversion between the classification and dense-prediction layouts
(``tools/convert_checkpoint.py``).

* ``backbone``: an mmengine checkpoint ``{'meta': ..., 'state_dict': {'backbone.<official name>':
  tensor}}`` without the classification head, for ``load_from=`` of a detector or segmentor or
  ``init_cfg=dict(type='Pretrained', checkpoint=...)`` of :class:`MambaOutBackbone`;
* ``official``: a plain state_dict with the official names, as the official repository releases
  them, for :class:`MambaOut`. From a detector or segmentor only the trunk exists: there is no final
  norm or head, and the backbone's output norms (``norm0..norm3``) have no place in it.

Both conversions check every tensor by name and shape against the model of the arch (see
:func:`mambaout_mm.weights.checkpoint.check_weights`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from ..models.backbone import MambaOutBackbone
from ..models.mambaout import ARCH_SETTINGS, MambaOut, MambaOutTrunk
from ..version import __version__
from .checkpoint import (
    CLASSIFIER_PREFIXES,
    OUTPUT_NORM_PATTERN,
    CheckpointMismatchError,
    check_weights,
    extract_state_dict,
    infer_arch,
    read_checkpoint,
    source_layout,
    to_official_layout,
)

TARGETS = ('backbone', 'official')


def default_target(state_dict: Mapping[str, torch.Tensor]) -> str:
    """``'official'`` for a detector/segmentor checkpoint, ``'backbone'`` for a classifier's."""
    return 'official' if source_layout(state_dict) == 'mmengine' else 'backbone'


def check_arch(state_dict: Mapping[str, torch.Tensor], arch: str | None = None) -> str:
    """The variant of an official-layout state_dict: ``arch`` if given and consistent with the
    shapes, else the inferred one; :class:`CheckpointMismatchError` when they differ or neither
    is known."""
    if arch is not None and arch not in ARCH_SETTINGS:
        raise CheckpointMismatchError(
            f'Unknown MambaOut arch {arch!r}; choose one of {", ".join(ARCH_SETTINGS)}.')
    inferred = infer_arch(state_dict)
    if arch is None:
        if inferred is None:
            raise CheckpointMismatchError(
                'Cannot infer the MambaOut variant from the checkpoint (no arch in '
                f'{", ".join(ARCH_SETTINGS)} has its shapes); pass --arch.')
        return inferred
    if inferred is not None and inferred != arch:
        raise CheckpointMismatchError(
            f"--arch {arch} does not match the checkpoint: its shapes are those of "
            f"arch='{inferred}' (requested arch='{arch}').")
    return arch


def _split(official: Mapping[str, torch.Tensor]) -> tuple[dict, dict, dict]:
    """Trunk, classifier (``norm.``/``head.``) and output-norm (``normN.``) tensors."""
    classifier = {k: v for k, v in official.items() if k.startswith(CLASSIFIER_PREFIXES)}
    norms = {k: v for k, v in official.items() if OUTPUT_NORM_PATTERN.match(k)}
    trunk = {k: v for k, v in official.items() if k not in classifier and k not in norms}
    return trunk, classifier, norms


def to_backbone_checkpoint(state_dict: Mapping[str, torch.Tensor], arch: str | None = None,
                           meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Any layout -> ``{'meta', 'state_dict': {'backbone.*'}}`` without the classification head.

    A detector's output norms (``norm0..norm3``) are kept. Checked against
    ``MambaOutBackbone(arch)``; ``arch`` as in :func:`check_arch`.
    """
    official = to_official_layout(state_dict)
    arch = check_arch(official, arch)
    trunk, _, norms = _split(official)
    weights = {**trunk, **norms}
    check_weights(MambaOutBackbone(arch).state_dict(), weights,
                  f'The converted MambaOut-{arch} backbone')
    return {'meta': {**(meta or {}), 'arch': arch, 'converted_by': f'mambaout_mm {__version__}'},
            'state_dict': {f'backbone.{k}': v for k, v in weights.items()}}


def to_official_classifier(state_dict: Mapping[str, torch.Tensor],
                           arch: str | None = None) -> dict[str, torch.Tensor]:
    """Any layout -> a plain state_dict with the official names, output norms dropped.

    A classifier's final norm and head are kept; a detector or segmentor has none, so its result
    loads into ``MambaOut(arch)`` with ``strict=False`` missing exactly ``norm.*`` and ``head.*``.
    Checked against ``MambaOut(arch)``; ``arch`` as in :func:`check_arch`.
    """
    official = to_official_layout(state_dict)
    arch = check_arch(official, arch)
    trunk, classifier, _ = _split(official)
    weights = {**trunk, **classifier}
    model = MambaOut(arch, num_classes=classifier['head.fc2.weight'].shape[0]) \
        if 'head.fc2.weight' in classifier else MambaOutTrunk(arch)
    check_weights(model.state_dict(), weights, f'The converted MambaOut-{arch} weights')
    return weights


def convert_checkpoint(src: str | Path, dst: str | Path, to: str | None = None,
                       arch: str | None = None) -> dict[str, Any]:
    """Convert the checkpoint ``src`` into ``dst`` (``to``: ``'backbone'`` or ``'official'``,
    default by the source, see :func:`default_target`).

    Returns ``dict(source_layout, to, arch, num_tensors, messages)``, the messages saying what was
    dropped and what the result lacks.
    """
    if Path(dst).suffix == '.safetensors':
        raise ValueError(f'{dst}: the converted checkpoint is written with torch.save; '
                         'name it .pth.')
    state_dict = extract_state_dict(read_checkpoint(src))
    layout = source_layout(state_dict)
    to = to or default_target(state_dict)
    if to not in TARGETS:
        raise ValueError(f'to must be one of {TARGETS}, got {to!r}.')
    official = to_official_layout(state_dict)
    arch = check_arch(official, arch)
    _, classifier, norms = _split(official)
    messages = [f'{src}: {layout} layout, {len(state_dict)} tensors, arch {arch}.']
    if layout == 'mmengine' and len(official) < len(state_dict):
        messages.append(f'Dropped {len(state_dict) - len(official)} tensors outside the backbone '
                        '(neck, heads).')

    if to == 'backbone':
        result = to_backbone_checkpoint(official, arch, meta=dict(source=str(src),
                                                                  source_layout=layout))
        count = len(result['state_dict'])
        if classifier:
            messages.append(f'Dropped the classification head ({len(classifier)} tensors: '
                            'norm.*, head.*), which a dense-prediction backbone does not use.')
        messages.append(f'Kept the output norms ({len(norms)} tensors).' if norms else
                        'The backbone output norms (norm0..norm3) are not in the source: they '
                        'start fresh when the backbone loads it.')
    else:
        result = to_official_classifier(official, arch)
        count = len(result)
        if norms:
            messages.append(f'Dropped the backbone output norms ({len(norms)} tensors: '
                            f'{", ".join(sorted({k.split(".")[0] for k in norms}))}), which the '
                            'classifier does not have.')
        if classifier:
            messages.append(f'Kept the final norm and the classification head '
                            f'({len(classifier)} tensors).')
        else:
            messages.append(
                'Trunk only: a detection/segmentation backbone has no final norm (norm.*) and no '
                'classification head (head.*). Load it with '
                f"MambaOut('{arch}', num_classes=...).load_state_dict(sd, strict=False), "
                'which reports exactly those as missing, and train them.')

    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    torch.save(result, dst)
    messages.append(f'Wrote {count} tensors of MambaOut-{arch} ({to} layout) to {dst}.')
    return dict(source_layout=layout, to=to, arch=arch, num_tensors=count, messages=messages)
