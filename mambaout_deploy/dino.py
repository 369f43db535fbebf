"""DINO from image to boxes, scores and labels, as mmdet's ``DINOHead.predict`` computes them:
the graph gives the last decoder layer's class logits (Q, K) and boxes (Q, 4: centre and size
over the image's width and height); here the ``max_per_img`` best of the Q x K sigmoid scores,
their boxes to corners in pixels, clipped to the image, rescaled to the original."""
from __future__ import annotations

import numpy as np

from .backends import load_graphs
from .detections import Detections, sigmoid
from .image import prepare, read_image
from .manifest import Manifest


class DinoDetector:
    def __init__(self, folder: str, manifest: Manifest, backend: str = 'onnxruntime',
                 threads: int | None = None, precision: str = 'fp32') -> None:
        self.manifest, self.settings = manifest, manifest.dino
        self.classes = manifest.classes
        self.graph = load_graphs(folder, manifest, backend, threads, precision)['detector']

    def __call__(self, image: str | np.ndarray) -> Detections:
        image = read_image(image) if isinstance(image, str) else image
        x = prepare(image, self.manifest.preprocess)
        logits, boxes = self.graph(image=x.tensor)
        scores = sigmoid(logits).reshape(-1)
        top = np.argsort(-scores, kind='stable')[:self.settings.max_per_img]
        k = logits.shape[1]
        cx, cy, w, h = boxes[top // k].T
        h_img, w_img = x.image_shape
        corners = np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], 1)
        corners = np.clip(corners * np.float32([w_img, h_img] * 2), 0,
                          np.float32([w_img, h_img] * 2))
        sw, sh = x.scale_factor
        return Detections(corners / np.float32([sw, sh] * 2), scores[top], top % k)
