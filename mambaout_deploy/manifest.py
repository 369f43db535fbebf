"""The deployed folder's ``manifest.json``: what the runtime needs of the config, in one typed,
versioned structure that the exporter (:mod:`mambaout_mm.deploy.end2end`) writes and the runtime
reads. A field is added here, once; the JSON follows the dataclasses, nested as they are:

- ``version``: :data:`VERSION`; any other is refused with what to do (export again, or upgrade)
- ``task``: ``detection`` or ``segmentation`` (:data:`TASKS`, mambaout_mm's tasks)
- ``classes``: the class names, in the model's label order
- ``graphs``: graph name -> ONNX file in the folder (:data:`GRAPHS` names each task's)
- ``preprocess``: :class:`Preprocess`, the test pipeline's resize, normalisation and padding
- ``detection``: :class:`Detection` (the detector's settings between its graphs), detection only
- ``segmentation``: :class:`Segmentation`, segmentation only
- ``artifacts``: files a backend made from the graphs, by kind, graph name -> file (for example
  ``openvino_ir_int8``: the int8 OpenVINO IR of the backbone's graph; see
  :mod:`mambaout_deploy.backends`)
- ``source``: what made it: ``config``, ``checkpoint``, ``torch`` (version), ``exported`` (date)
"""
from __future__ import annotations

import json
import os
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from typing import Any, Optional

from .errors import DeployError

#: The manifest version this runtime reads and the exporter writes. Version 1 (before 2026-12-06)
#: was an untyped dict with ``format`` and ``int8`` keys.
VERSION = 2
FILE = 'manifest.json'
TASKS = ('detection', 'segmentation')
GRAPHS = {'detection': ('dense', 'box_head', 'mask_head'), 'segmentation': ('segmentor',)}
EXPORT = '`tools/export_onnx.py CONFIG CHECKPOINT --part end2end --out FOLDER`'


class ManifestError(DeployError, ValueError):
    """The folder is not a deployed model this runtime reads; the message says why."""


@dataclass
class Preprocess:
    """The test pipeline's ``Resize`` and the data preprocessor's normalisation and padding."""
    scale: list[int]            # Resize's scale, (w, h) as mmcv reads it
    keep_ratio: bool
    mean: list[float]           # per channel, after the channel flip
    std: list[float]
    to_rgb: bool                # BGR (as OpenCV loads) to RGB before normalising
    pad_size_divisor: int = 1


@dataclass
class Rpn:
    """mmdet's ``RPNHead`` at test time: anchors per level, ``test_cfg.rpn``, its box coder."""
    strides: list[float]
    base_anchors: list[list[list[float]]]  # per level, (A, 4) anchors at the origin
    nms_pre: int
    max_per_img: int
    iou_threshold: float
    min_bbox_size: float
    means: list[float]          # DeltaXYWHBBoxCoder's
    stds: list[float]
    wh_ratio_clip: float


@dataclass
class Rcnn:
    """mmdet's ``StandardRoIHead`` at test time: ``test_cfg.rcnn`` and the box head's coder."""
    score_thr: float
    iou_threshold: float
    max_per_img: int
    mask_thr_binary: float
    means: list[float]
    stds: list[float]
    wh_ratio_clip: float


@dataclass
class Detection:
    """Mask R-CNN between its graphs."""
    features: int               # FPN maps the dense graph outputs before the RPN's
    roi_levels: int             # of them, those the RoI heads pool from
    finest_scale: dict[str, float]  # box_head, mask_head: their RoI extractors' level rule
    rpn: Rpn
    rcnn: Rcnn


@dataclass
class Segmentation:
    reduce_zero_label: bool     # the dataset's: label 0 ignored and the rest shifted, for --eval


@dataclass
class Manifest:
    task: str
    classes: list[str]
    graphs: dict[str, str]
    preprocess: Preprocess
    detection: Optional[Detection] = None
    segmentation: Optional[Segmentation] = None
    artifacts: dict[str, dict[str, str]] = field(default_factory=dict)
    source: dict[str, Optional[str]] = field(default_factory=dict)
    version: int = VERSION

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ManifestError(f'task {self.task!r} is not one of {TASKS}.')
        other = TASKS[1 - TASKS.index(self.task)]
        if getattr(self, self.task) is None or getattr(self, other) is not None:
            raise ManifestError(f'A {self.task} manifest has a `{self.task}` section and no '
                                f'`{other}` one.')
        missing = [g for g in GRAPHS[self.task] if g not in self.graphs]
        if missing:
            raise ManifestError(f'The manifest names no graphs {missing} ({self.task} needs '
                                f'{list(GRAPHS[self.task])}).')

    def files(self) -> list[str]:
        """Every file the manifest names in its folder: graphs and artifacts."""
        return [*self.graphs.values(), *(f for made in self.artifacts.values()
                                         for f in made.values())]

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any, where: str = FILE) -> Manifest:
        """The manifest in ``data``; a :class:`ManifestError` naming what is wrong, the version
        first (a manifest of another version is not read further)."""
        if not isinstance(data, dict):
            raise ManifestError(f'{where} holds {type(data).__name__}, not a manifest object.')
        version = data.get('version', data.get('format'))  # 'format': version 1's key
        if version != VERSION:
            todo = ('upgrade mambaout-deploy (the runtime) to the version that exported it'
                    if isinstance(version, int) and version > VERSION else
                    f'export the model again with this version: {EXPORT}')
            raise ManifestError(f'{where} is manifest version {version!r}; this runtime reads '
                                f'version {VERSION}: {todo}.')
        try:
            return _build(cls, data, where)
        except ManifestError as err:
            raise ManifestError(f'{err} Export the model again: {EXPORT}.') from None

    @classmethod
    def from_json(cls, text: str, where: str = FILE) -> Manifest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ManifestError(f'{where} is not JSON ({err}).') from None
        return cls.from_dict(data, where)


def _build(cls: type, data: Any, where: str) -> Any:
    """``cls`` from the JSON object ``data``: its fields, no other keys, each value of the
    field's type (nested dataclasses built the same way)."""
    if not isinstance(data, dict):
        raise ManifestError(f'{where} is {type(data).__name__}, not an object.')
    hints, names = typing.get_type_hints(cls), {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    missing = [f.name for f in fields(cls) if f.name not in data
               and f.default is MISSING and f.default_factory is MISSING]
    if unknown or missing:
        raise ManifestError(f'{where}: ' + '; '.join(
            text for text in (unknown and f'unknown keys {unknown}',
                              missing and f'missing keys {missing}') if text) + '.')
    return cls(**{k: _value(v, hints[k], f'{where}.{k}') for k, v in data.items()})


def _value(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against the type ``hint`` (a dataclass built)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        return None if value is None else _value(value, args[0], where)
    if is_dataclass(hint):
        return _build(hint, value, where)
    if origin is list:
        _expect(value, list, where)
        return [_value(v, args[0], f'{where}[{i}]') for i, v in enumerate(value)]
    if origin is dict:
        _expect(value, dict, where)
        return {k: _value(v, args[1], f'{where}.{k}') for k, v in value.items()}
    if hint is float:
        _expect(value, (int, float), where)
        return float(value)
    if hint in (int, bool, str):
        _expect(value, hint, where)
    return value


def _expect(value: Any, kind: type | tuple, where: str) -> None:
    names = ' or '.join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ManifestError(f'{where} is {value!r}, not {names}.')


def read_manifest(folder: str) -> Manifest:
    """The manifest of the deployed ``folder``, checked, with every file it names there."""
    path = os.path.join(folder, FILE)
    if not os.path.isfile(path):
        raise ManifestError(f'{folder} has no {FILE}: give the folder that {EXPORT} wrote.')
    with open(path) as f:
        manifest = Manifest.from_json(f.read(), path)
    missing = [f for f in manifest.files() if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise ManifestError(f'{folder} lacks the files {missing} that {FILE} names; copy the '
                            'whole exported folder.')
    return manifest


def write_manifest(folder: str, manifest: Manifest) -> str:
    path = os.path.join(folder, FILE)
    with open(path, 'w') as f:
        f.write(manifest.to_json() + '\n')
    return path
