"""The deployed folder's ``manifest.json``: what the runtime needs of the config, in one file.

Written by :func:`mambaout_mm.deploy.end2end.export_end2end`; read (and checked) here. Keys:
``format``, ``task`` (``detection`` | ``segmentation``), ``classes``, ``graphs`` (name -> ONNX
file in the folder), ``preprocess`` (``scale``, ``keep_ratio``, ``mean``, ``std``, ``to_rgb``,
``pad_size_divisor``), and for detection ``rpn`` and ``rcnn`` (the config's test settings, the
anchors' base boxes and strides, the box coders' means and stds), for segmentation
``align_corners``; ``source`` records the config, checkpoint and exporter.
"""
from __future__ import annotations

import json
import os

FORMAT = 1
FILE = 'manifest.json'
GRAPHS = {'detection': ('dense', 'box_head', 'mask_head'), 'segmentation': ('segmentor',)}


class ManifestError(ValueError):
    """The folder is not a deployed model this runtime reads; the message says why."""


def read_manifest(folder: str) -> dict:
    path = os.path.join(folder, FILE)
    if not os.path.isfile(path):
        raise ManifestError(f'{folder} has no {FILE}: give the folder that `tools/export_onnx.py '
                            'CONFIG CHECKPOINT --part end2end --out FOLDER` wrote.')
    with open(path) as f:
        manifest = json.load(f)
    if manifest.get('format') != FORMAT:
        raise ManifestError(f"{path} has format {manifest.get('format')!r}; this runtime reads "
                            f'format {FORMAT}: export the model again with this version.')
    task = manifest.get('task')
    if task not in GRAPHS:
        raise ManifestError(f'{path}: task {task!r} is not one of {sorted(GRAPHS)}.')
    missing = [g for g in GRAPHS[task]
               if not os.path.isfile(os.path.join(folder, manifest['graphs'].get(g, '')))]
    if missing:
        raise ManifestError(f'{folder} lacks the graphs {missing} that {FILE} names; copy the '
                            'whole exported folder.')
    return manifest


def write_manifest(folder: str, manifest: dict) -> str:
    path = os.path.join(folder, FILE)
    with open(path, 'w') as f:
        json.dump(dict(format=FORMAT, **manifest), f, indent=2)
    return path
