"""The deployment runtime: MambaOut detectors and segmentors exported by ``tools/export_onnx.py
--part end2end``, run with ONNX Runtime or OpenVINO, numpy and OpenCV only: no torch, mmcv,
mmdet or mmseg.

    from mambaout_deploy import load
    model = load('work_dirs/deploy/mask_rcnn_tiny', backend='openvino', threads=8)
    result = model('demo.jpg')      # Detections (boxes, scores, labels, masks) or a label map

A deployed model is a folder: ``manifest.json`` (the config's test-time pre- and post-processing,
the classes, the graphs: :mod:`.manifest`) and its ONNX graphs. Pre-processing is :mod:`.image`,
the backends and their registry :mod:`.backends`, box and mask post-processing :mod:`.boxes`, the
models by head (:data:`MODELS`): :mod:`.rcnn`, :mod:`.retinanet`, :mod:`.dino`,
:mod:`.mask2former`, :mod:`.segmentor`, what detectors return :mod:`.detections`, files written
:mod:`.outputs`, accuracy :mod:`.evaluate`.
``pip install ./packaging/mambaout-deploy`` installs this package alone.
"""
from __future__ import annotations

from .dino import DinoDetector
from .manifest import read_manifest
from .mask2former import Mask2FormerDetector
from .rcnn import RcnnDetector
from .retinanet import RetinaNetDetector
from .segmentor import Segmentor

__all__ = ['load', 'MODELS']

#: the runtime's model for each head of the manifest
MODELS = {'rcnn': RcnnDetector, 'retinanet': RetinaNetDetector, 'dino': DinoDetector,
          'mask2former': Mask2FormerDetector, 'segmentor': Segmentor}


def load(folder: str, backend: str = 'onnxruntime', threads: int | None = None,
         precision: str = 'fp32'):
    """The deployed model in ``folder`` on ``backend`` (a name in :func:`.backends.backends`)."""
    manifest = read_manifest(folder)
    return MODELS[manifest.head](folder, manifest, backend, threads, precision)
