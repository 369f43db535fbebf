"""DINO from image to boxes, scores and labels, as mmdet's ``DINOHead.predict`` computes them:
the graph gives the last decoder layer's class logits (Q, K) and boxes (Q, 4: centre and size
over the image's width and height); here the ``max_per_img`` best of the Q x K sigmoid scores,
their boxes to corners in pixels, clipped to the image, rescaled to the original."""
from __future__ import annotations

import numpy as np

from .detections import Detections, sigmoid
from .model import DeployedModel


class DinoDetector(DeployedModel):
    def __call__(self, image: str | np.ndarray) -> Detections:
        x = self.prepare(image)
        logits, boxes = self.graphs['detector'](image=x.tensor)
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
