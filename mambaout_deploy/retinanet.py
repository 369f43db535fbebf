"""RetinaNet from image to boxes, scores and labels, as mmdet's ``BaseDenseHead.predict``
computes them: per level the ``nms_pre`` best (anchor, class) scores above ``score_thr``, decoded,
rescaled to the original image, NMS per class, the best ``max_per_img``."""
from __future__ import annotations

import numpy as np

from . import boxes as B
from .detections import Detections, rescale, sigmoid
from .model import DeployedModel


class RetinaNetDetector(DeployedModel):
    def __call__(self, image: str | np.ndarray) -> Detections:
        x = self.prepare(image)
        outputs = self.graphs['dense'](image=x.tensor)
        m = self.settings
        levels = len(m.anchors.strides)
        all_scores, all_labels, all_deltas, all_anchors = [], [], [], []
        for level, (s, d) in enumerate(zip(outputs[:levels], outputs[levels:])):
            (_, channels, height, width), anchors = s.shape, len(m.anchors.base_anchors[level])
            s = sigmoid(s[0].transpose(1, 2, 0).reshape(-1, channels // anchors))
            d = d[0].transpose(1, 2, 0).reshape(-1, 4)
            rows, labels = np.nonzero(s > m.score_thr)  # mmdet's filter_scores_and_topk
            s = s[rows, labels]
            top = np.argsort(-s, kind='stable')[:m.nms_pre if m.nms_pre > 0 else None]
            all_scores.append(s[top])
            all_labels.append(labels[top])
            all_deltas.append(d[rows[top]])
            all_anchors.append(B.level_anchors(m.anchors, level, height, width)[rows[top]])
        scores, labels = np.concatenate(all_scores), np.concatenate(all_labels)
        boxes = rescale(B.decode(np.concatenate(all_anchors), np.concatenate(all_deltas),
                                 m.coder, x.image_shape), x.scale_factor)
        if m.min_bbox_size >= 0:
            valid = ((boxes[:, 2] - boxes[:, 0] > m.min_bbox_size)
                     & (boxes[:, 3] - boxes[:, 1] > m.min_bbox_size))
            boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
        if len(boxes):
            keep = B.batched_nms(boxes, scores, labels, m.iou_threshold, m.max_per_img)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        return Detections(boxes, scores, labels)
