"""Mask R-CNN and Cascade Mask R-CNN from image to boxes, scores, labels and masks, as mmdet's
``predict`` computes them: the graphs do the networks, :mod:`.boxes` the data-dependent steps
between them. A cascade's stages are written once: each stage's box head refines the boxes the
next one pools, the class scores of all stages are averaged (mmdet's ``CascadeRoIHead``), and so
are the mask probabilities."""
from __future__ import annotations

import numpy as np

from . import boxes as B
from .detections import Detections, sigmoid, softmax
from .image import Prepared
from .model import DeployedModel

#: the box a level without boxes is given (its outputs are dropped)
PLACEHOLDER = np.array([[0., 0., 1., 1.]], np.float32)


class RcnnDetector(DeployedModel):
    def __call__(self, image: str | np.ndarray) -> Detections:
        x = self.prepare(image)
        outputs = self.graphs['dense'](image=x.tensor)
        m = self.settings
        levels = len(m.rpn.anchors.strides)
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
        rpn = self.settings.rpn
        all_scores, all_deltas, all_anchors, level_ids = [], [], [], []
        for level, (s, d) in enumerate(zip(scores, deltas)):
            height, width = s.shape[2:]
            s = sigmoid(s[0].transpose(1, 2, 0).reshape(-1))
            d = d[0].transpose(1, 2, 0).reshape(-1, 4)
            anchors = B.level_anchors(rpn.anchors, level, height, width)
            if 0 < rpn.nms_pre < len(s):
                top = np.argsort(-s, kind='stable')[:rpn.nms_pre]
                s, d, anchors = s[top], d[top], anchors[top]
            all_scores.append(s)
            all_deltas.append(d)
            all_anchors.append(anchors)
            level_ids.append(np.full(len(s), level))
        s, ids = np.concatenate(all_scores), np.concatenate(level_ids)
        boxes = B.decode(np.concatenate(all_anchors), np.concatenate(all_deltas), rpn.coder,
                         image_shape)
        if rpn.min_bbox_size >= 0:
            valid = ((boxes[:, 2] - boxes[:, 0] > rpn.min_bbox_size)
                     & (boxes[:, 3] - boxes[:, 1] > rpn.min_bbox_size))
            boxes, s, ids = boxes[valid], s[valid], ids[valid]
        if len(boxes) == 0:
            return boxes
        return boxes[B.batched_nms(boxes, s, ids, rpn.iou_threshold, rpn.max_per_img)]

    def roi_head(self, name: str, finest_scale: float, feeds: dict,
                 boxes: np.ndarray) -> list[np.ndarray]:
        """A RoI head graph's outputs for ``boxes``, in their order: the boxes go to the graph
        grouped by FPN level (a level with none gets one placeholder box, dropped after)."""
        levels = B.roi_levels(boxes, finest_scale, len(feeds))
        groups, rows = {}, []
        for level in range(len(feeds)):
            index = np.flatnonzero(levels == level)
            groups[f'boxes{level}'] = boxes[index] if len(index) else PLACEHOLDER
            rows.append(index if len(index) else np.array([-1]))
        rows = np.concatenate(rows)
        order = np.argsort(rows, kind='stable')[np.sum(rows < 0):]  # placeholders sort first
        return [out[order] for out in self.graphs[name](**feeds, **groups)]

    def detect(self, feeds: dict, proposals: np.ndarray, image_shape: tuple[int, int]):
        """mmdet's ``BBoxHead`` prediction with ``multiclass_nms`` after each stage's refinement,
        in the network's input coordinates (as mmdet keeps them for the mask head)."""
        m = self.settings
        if len(proposals) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        rois, logits = proposals, []
        for i, stage in enumerate(m.stages):
            cls_score, deltas = self.roi_head(f'box_head{i}', stage.finest_scale, feeds, rois)
            logits.append(cls_score)
            if i < len(m.stages) - 1:  # regress by the stage's best class (no background)
                rois = B.decode(rois, B.class_deltas(deltas, cls_score[:, :-1].argmax(1),
                                                     stage.class_agnostic),
                                stage.coder, image_shape)
        scores = softmax(sum(logits) / len(logits))[:, :-1]
        k, last = scores.shape[1], m.stages[-1]
        if last.class_agnostic:
            boxes = np.repeat(B.decode(rois, deltas, last.coder, image_shape), k, axis=0)
        else:
            boxes = B.decode(np.repeat(rois, k, axis=0), deltas.reshape(-1, 4), last.coder,
                             image_shape)
        scores, labels = scores.reshape(-1), np.tile(np.arange(k), len(rois))
        valid = scores > m.score_thr
        boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
        if len(boxes) == 0:
            return boxes, scores, labels
        keep = B.batched_nms(boxes, scores, labels, m.iou_threshold, m.max_per_img)
        return boxes[keep], scores[keep], labels[keep]

    def finish(self, feeds: dict, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
               x: Prepared) -> Detections:
        """Masks from the mask heads (their probabilities averaged over the stages), boxes
        rescaled to the original image, masks pasted there."""
        h, w = x.original_shape
        if len(boxes) == 0:
            return Detections(boxes, scores, labels, np.zeros((0, h, w), bool))
        rows = np.arange(len(labels))
        probs = sum(sigmoid(self.roi_head(f'mask_head{i}', stage.finest_scale, feeds,
                                          boxes)[0][rows, labels])
                    for i, stage in enumerate(self.settings.stages)) / len(self.settings.stages)
        sw, sh = x.scale_factor
        boxes = boxes / np.asarray([sw, sh, sw, sh], np.float32)  # FCNMaskHead's rescale
        masks = B.paste_masks(probs, boxes, h, w, self.settings.mask_thr_binary)
        return Detections(boxes, scores, labels, masks)
