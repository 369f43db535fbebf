"""mmdet's Mask2Former (instances) from image to boxes, scores, labels and masks, as its
``MaskFormerFusionHead.predict`` computes them: the graph gives the last layer's class logits
(Q, K + 1) and mask logits resized to the padded input (Q, H, W); here the ``max_per_image`` best
of the Q x K class scores, their masks cut to the image and resized to the original, each scored
by its class score times its mean foreground probability, its box the mask's extent."""
from __future__ import annotations

import numpy as np

from .detections import Detections, sigmoid, softmax
from .image import resize_maps
from .model import DeployedModel


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """mmdet's ``mask2bbox``: (N, H, W) bool -> (N, 4) extents (x1, y1, x2 + 1, y2 + 1); zeros
    for an empty mask."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, (columns, rows) in enumerate(zip(masks.any(1), masks.any(2))):
        xs, ys = np.flatnonzero(columns), np.flatnonzero(rows)
        if len(xs) and len(ys):
            boxes[i] = xs[0], ys[0], xs[-1] + 1, ys[-1] + 1
    return boxes


class Mask2FormerDetector(DeployedModel):
    def __call__(self, image: str | np.ndarray) -> Detections:
        x = self.prepare(image)
        logits, masks = self.graphs['detector'](image=x.tensor)
        k = logits.shape[1] - 1
        scores = softmax(logits)[:, :-1].reshape(-1)
        top = np.argsort(-scores, kind='stable')[:self.settings.max_per_image]
        top = top[top % k < self.settings.things]
        queries, inverse = np.unique(top // k, return_inverse=True)  # each mask resized once
        rh, rw = x.image_shape
        resized = resize_maps(masks[queries, :rh, :rw].transpose(1, 2, 0), x.original_shape)
        logits_per_box = resized.transpose(2, 0, 1)[inverse.reshape(-1)]
        binary = logits_per_box > 0
        foreground = ((sigmoid(logits_per_box) * binary).reshape(len(top), -1).sum(1)
                      / (binary.reshape(len(top), -1).sum(1) + np.float32(1e-6)))
        det_scores = scores[top] * foreground
        order = np.argsort(-det_scores, kind='stable')
        binary = binary[order]
        return Detections(mask_boxes(binary), det_scores[order], (top % k)[order], binary)
