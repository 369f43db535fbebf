"""What every detector returns, and the activations their post-processing shares."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class Detections:
    """Boxes (N, 4, x1 y1 x2 y2) in the original image, scores, labels (class indices) and, for
    the heads that predict them, masks (N, H, W bool); by descending score."""
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: Optional[np.ndarray] = None

    def above(self, threshold: float) -> Detections:
        keep = self.scores >= threshold
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep],
                          None if self.masks is None else self.masks[keep])


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over='ignore'):  # exp(-x) -> inf for very negative x gives 0, as it should
        return 1 / (1 + np.exp(-x))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def rescale(boxes: np.ndarray, scale_factor: tuple[float, float]) -> np.ndarray:
    """Boxes in the network's input -> in the original image, as mmdet's ``scale_boxes`` by the
    reciprocal scale factor."""
    sw, sh = scale_factor
    return boxes * np.asarray([1 / sw, 1 / sh] * 2, np.float32)
