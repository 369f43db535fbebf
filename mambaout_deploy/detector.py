"""Mask R-CNN from image to boxes, scores, labels and masks, as mmdet's ``predict`` computes them:
the graphs do the networks, :mod:`.boxes` the data-dependent steps between them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import boxes as B
from .backends import load_graphs
from .image import Prepared, prepare, read_image
from .manifest import Manifest


@dataclass
class Detections:
    """Boxes (N, 4, x1 y1 x2 y2) in the original image, scores, labels (class indices) and
    masks (N, H, W bool), by descending score."""
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray

    def above(self, threshold: float) -> Detections:
        keep = self.scores >= threshold
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep],
                          self.masks[keep])


#: the box a level without boxes is given (its outputs are dropped)
PLACEHOLDER = np.array([[0., 0., 1., 1.]], np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over='ignore'):  # exp(-x) -> inf for very negative x gives 0, as it should
        return 1 / (1 + np.exp(-x))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class Detector:
    def __init__(self, folder: str, manifest: Manifest, backend: str = 'onnxruntime',
                 threads: int | None = None, precision: str = 'fp32') -> None:
        self.manifest = manifest
        self.classes = manifest.classes
        self.graphs = load_graphs(folder, manifest, backend, threads, precision)

    def __call__(self, image: str | np.ndarray) -> Detections:
        image = read_image(image) if isinstance(image, str) else image
        x = prepare(image, self.manifest.preprocess)
        outputs = self.graphs['dense'](image=x.tensor)
        m = self.manifest.detection
        levels = len(m.rpn.strides)
        features = outputs[:m.features]
        proposals = self.proposals(outputs[m.features:m.features + levels],
                                   outputs[m.features + levels:], x.image_shape)
        feeds = {f'feature{i}': f for i, f in enumerate(features[:m.roi_levels])}
        boxes, scores, labels = self.detect(feeds, proposals, x.image_shape)
        return self.finish(feeds, boxes, scores, labels, x)

    def proposals(self, scores: list[np.ndarray], deltas: list[np.ndarray],
                  image_shape: tuple[int, int]) -> np.ndarray:
        """mmdet's ``RPNHead`` prediction: top ``nms_pre`` anchors per level, decoded, NMS
        per level, the best ``max_per_img``."""
        rpn = self.manifest.detection.rpn
        all_scores, all_deltas, all_anchors, level_ids = [], [], [], []
        for level, (s, d) in enumerate(zip(scores, deltas)):
            height, width = s.shape[2:]
            s = sigmoid(s[0].transpose(1, 2, 0).reshape(-1))
            d = d[0].transpose(1, 2, 0).reshape(-1, 4)
            anchors = B.grid_anchors(np.asarray(rpn.base_anchors[level], np.float32),
                                     rpn.strides[level], height, width)
            if 0 < rpn.nms_pre < len(s):
                top = np.argsort(-s, kind='stable')[:rpn.nms_pre]
                s, d, anchors = s[top], d[top], anchors[top]
            all_scores.append(s)
            all_deltas.append(d)
            all_anchors.append(anchors)
            level_ids.append(np.full(len(s), level))
        s, ids = np.concatenate(all_scores), np.concatenate(level_ids)
        boxes = B.decode(np.concatenate(all_anchors), np.concatenate(all_deltas), rpn.means,
                         rpn.stds, image_shape, rpn.wh_ratio_clip)
        if rpn.min_bbox_size >= 0:
            valid = ((boxes[:, 2] - boxes[:, 0] > rpn.min_bbox_size)
                     & (boxes[:, 3] - boxes[:, 1] > rpn.min_bbox_size))
            boxes, s, ids = boxes[valid], s[valid], ids[valid]
        if len(boxes) == 0:
            return boxes
        return boxes[B.batched_nms(boxes, s, ids, rpn.iou_threshold, rpn.max_per_img)]

    def roi_head(self, name: str, feeds: dict, boxes: np.ndarray) -> list[np.ndarray]:
        """A RoI head graph's outputs for ``boxes``, in their order: the boxes go to the graph
        grouped by FPN level (a level with none gets one placeholder box, dropped after)."""
        levels = B.roi_levels(boxes, self.manifest.detection.finest_scale[name], len(feeds))
        groups, rows = {}, []
        for level in range(len(feeds)):
            index = np.flatnonzero(levels == level)
            groups[f'boxes{level}'] = boxes[index] if len(index) else PLACEHOLDER
            rows.append(index if len(index) else np.array([-1]))
        rows = np.concatenate(rows)
        order = np.argsort(rows, kind='stable')[np.sum(rows < 0):]  # placeholders sort first
        return [out[order] for out in self.graphs[name](**feeds, **groups)]

    def detect(self, feeds: dict, proposals: np.ndarray, image_shape: tuple[int, int]):
        """mmdet's ``BBoxHead`` prediction with ``multiclass_nms``, in the network's input
        coordinates (as mmdet keeps them for the mask head)."""
        rcnn = self.manifest.detection.rcnn
        if len(proposals) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        cls_score, deltas = self.roi_head('box_head', feeds, proposals)
        scores = softmax(cls_score)[:, :-1]
        k = scores.shape[1]
        boxes = B.decode(np.repeat(proposals, k, axis=0), deltas.reshape(-1, 4), rcnn.means,
                         rcnn.stds, image_shape, rcnn.wh_ratio_clip)
        scores, labels = scores.reshape(-1), np.tile(np.arange(k), len(proposals))
        valid = scores > rcnn.score_thr
        boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
        if len(boxes) == 0:
            return boxes, scores, labels
        keep = B.batched_nms(boxes, scores, labels, rcnn.iou_threshold, rcnn.max_per_img)
        return boxes[keep], scores[keep], labels[keep]

    def finish(self, feeds: dict, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
               x: Prepared) -> Detections:
        """Masks from the mask head, boxes rescaled to the original image, masks pasted there."""
        h, w = x.original_shape
        if len(boxes) == 0:
            return Detections(boxes, scores, labels, np.zeros((0, h, w), bool))
        logits = self.roi_head('mask_head', feeds, boxes)[0]
        probs = sigmoid(logits[np.arange(len(labels)), labels])
        sw, sh = x.scale_factor
        boxes = boxes / np.asarray([sw, sh, sw, sh], np.float32)
        masks = B.paste_masks(probs, boxes, h, w, self.manifest.detection.rcnn.mask_thr_binary)
        return Detections(boxes, scores, labels, masks)
