"""The deployed folder's ``manifest.json``: what the runtime needs of the config, in one typed,
versioned structure that the exporter (:mod:`mambaout_mm.deploy.end2end`) writes and the runtime
reads. A field is added here, once; the JSON follows the dataclasses, nested as they are:

- ``version``: :data:`VERSION`; any other is refused with what to do (export again, or upgrade)
- ``task``: ``detection`` or ``segmentation`` (:data:`TASKS`, mambaout_mm's tasks)
- ``head``: the model the runtime runs (:data:`HEADS`: its task and the graph holding the backbone)
- ``classes``: the class names, in the model's label order
- ``graphs``: graph name -> ONNX file in the folder (:meth:`Manifest.required_graphs` names them)
- ``preprocess``: :class:`Preprocess`, the test pipeline's resize, normalisation and padding
- ``rcnn``: :class:`Rcnn`, Mask R-CNN's and Cascade Mask R-CNN's settings between their graphs
- ``retinanet``: :class:`RetinaNet`, the dense detector's anchors, top-k and NMS
- ``dino``: :class:`Dino`, the query detector's top-k
- ``mask2former``: :class:`Mask2Former`, the instance head's top-k
- ``segmentation``: :class:`Segmentation`, every segmentation head's
- ``artifacts``: files a backend made from the graphs, by kind, graph name -> file (for example
  ``openvino_ir_int8``: the int8 OpenVINO IR of the backbone's graph; see
  :mod:`mambaout_deploy.backends`)
- ``source``: what made it: ``config``, ``checkpoint``, ``torch`` (version), ``exported`` (date)

A head's settings are the section named after it (``rcnn``, ``retinanet``, ``dino``,
``mask2former``); a manifest holds its head's section and no other.
"""
from __future__ import annotations

import json
import os
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from typing import Any, Optional

from .errors import DeployError

#: The manifest version this runtime reads and the exporter writes. Version 1 (before 2026-12-06)
#: was an untyped dict with ``format`` and ``int8`` keys; version 2 had one ``detection`` section
#: for Mask R-CNN alone.
VERSION = 3
FILE = 'manifest.json'
TASKS = ('detection', 'segmentation')
#: head -> its task, and the graph that holds the backbone (the one int8 quantises): ``rcnn``
#: (Mask R-CNN, Cascade Mask R-CNN), ``retinanet``, ``dino`` (its one graph gives the last
#: decoder layer's queries), ``mask2former`` (mmdet's, instances: its one graph gives the last
#: layer's queries), ``segmentor`` (one graph of per-pixel class scores: UperNet,
#: Mask2Former semantic)
HEADS = {'rcnn': ('detection', 'dense'), 'retinanet': ('detection', 'dense'),
         'dino': ('detection', 'detector'), 'mask2former': ('detection', 'detector'),
         'segmentor': ('segmentation', 'segmentor')}
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
    to_float32: bool = False    # LoadImageFromFile's: resized in float32, not 8-bit


@dataclass
class BoxCoder:
    """mmdet's ``DeltaXYWHBBoxCoder`` (``clip_border=True``, no centre clamp)."""
    means: list[float]
    stds: list[float]
    wh_ratio_clip: float        # ``decode``'s default


@dataclass
class Anchors:
    """mmdet's ``AnchorGenerator``: per level, its stride and its anchors at the origin."""
    strides: list[float]
    base_anchors: list[list[list[float]]]  # per level, (A, 4)


@dataclass
class Rpn:
    """mmdet's ``RPNHead`` at test time: its anchors and coder, ``test_cfg.rpn``."""
    anchors: Anchors
    coder: BoxCoder
    nms_pre: int
    max_per_img: int
    iou_threshold: float
    min_bbox_size: float


@dataclass
class RoiStage:
    """One stage of RoI heads: its box head's coder, whether it regresses one box for all classes,
    and its RoI extractors' level rule. Its graphs: ``box_head{i}``, ``mask_head{i}``."""
    coder: BoxCoder
    class_agnostic: bool
    finest_scale: float


@dataclass
class Rcnn:
    """Mask R-CNN (one stage) and Cascade Mask R-CNN (several, their class scores averaged and
    their masks too, as mmdet's ``CascadeRoIHead``), between the graphs: ``test_cfg.rcnn``."""
    features: int               # FPN maps the dense graph outputs before the RPN's
    roi_levels: int             # of them, those the RoI heads pool from
    rpn: Rpn
    stages: list[RoiStage]
    score_thr: float
    iou_threshold: float
    max_per_img: int
    mask_thr_binary: float


@dataclass
class RetinaNet:
    """mmdet's ``AnchorHead`` with sigmoid scores at test time (RetinaNet): the dense graph's
    class scores and deltas per level, ``test_cfg``."""
    anchors: Anchors
    coder: BoxCoder
    nms_pre: int
    score_thr: float
    min_bbox_size: float
    iou_threshold: float
    max_per_img: int


@dataclass
class Dino:
    """mmdet's ``DINOHead`` at test time (sigmoid scores): the ``max_per_img`` best of queries x
    classes."""
    max_per_img: int


@dataclass
class Mask2Former:
    """mmdet's ``MaskFormerFusionHead.instance_postprocess``: the ``max_per_image`` best of
    queries x classes (softmax without the no-object class), those of the first ``things``
    classes kept."""
    max_per_image: int
    things: int


@dataclass
class Segmentation:
    reduce_zero_label: bool     # the dataset's: label 0 ignored and the rest shifted, for --eval


@dataclass
class Manifest:
    task: str
    head: str
    classes: list[str]
    graphs: dict[str, str]
    preprocess: Preprocess
    rcnn: Optional[Rcnn] = None
    retinanet: Optional[RetinaNet] = None
    dino: Optional[Dino] = None
    mask2former: Optional[Mask2Former] = None
    segmentation: Optional[Segmentation] = None
    artifacts: dict[str, dict[str, str]] = field(default_factory=dict)
    source: dict[str, Optional[str]] = field(default_factory=dict)
    version: int = VERSION

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ManifestError(f'task {self.task!r} is not one of {TASKS}.')
        if HEADS.get(self.head, (None,))[0] != self.task:
            raise ManifestError(f'head {self.head!r} is not one of the {self.task} heads '
                                f'{[h for h, (t, _) in HEADS.items() if t == self.task]}.')
        wanted = {self.head} & set(SECTIONS) | ({'segmentation'} if self.task == 'segmentation'
                                                 else set())
        present = {name for name in SECTIONS if getattr(self, name) is not None}
        if present != wanted:
            raise ManifestError(f'A {self.head} manifest has the sections {sorted(wanted)}, not '
                                f'{sorted(present)}.')
        missing = [g for g in self.required_graphs() if g not in self.graphs]
        if missing:
            raise ManifestError(f'The manifest names no graphs {missing} (a {self.head} model '
                                f'runs {self.required_graphs()}).')

    def required_graphs(self) -> list[str]:
        """The graphs the runtime runs for this head."""
        if self.head == 'rcnn':
            return ['dense', *(f'{head}{i}' for i in range(len(self.rcnn.stages))
                               for head in ('box_head', 'mask_head'))]
        return [HEADS[self.head][1]]

    @property
    def backbone_graph(self) -> str:
        """The graph that holds the backbone."""
        return HEADS[self.head][1]

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


def _sections() -> tuple[str, ...]:
    hints = typing.get_type_hints(Manifest)
    return tuple(f.name for f in fields(Manifest)
                 if any(is_dataclass(arg) for arg in typing.get_args(hints[f.name])))


#: the optional sections (the fields that hold a dataclass): one per head that has settings, and
#: the segmentation task's
SECTIONS = _sections()


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
