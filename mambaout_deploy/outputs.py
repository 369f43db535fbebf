"""What the runtime writes: pictures, COCO-format detections, label-map PNGs."""
from __future__ import annotations

import colorsys

import cv2
import numpy as np

#: The score from which detections are drawn and compared, unless a tool is told otherwise.
SCORE_THRESHOLD = 0.3


def palette(n: int) -> np.ndarray:
    """``n`` distinct BGR colours."""
    rgb = [colorsys.hsv_to_rgb(i / max(n, 1), 0.75, 0.95) for i in range(n)]
    return (np.asarray(rgb)[:, ::-1] * 255).astype(np.uint8)


def draw_detections(image: np.ndarray, detections, classes: list[str],
                    threshold: float) -> np.ndarray:
    """Masks blended in, boxes and ``class score`` labels, for detections >= ``threshold``."""
    out = image.copy()
    colours = palette(len(classes))
    shown = detections.above(threshold)
    masks = shown.masks if shown.masks is not None else [None] * len(shown.scores)
    for box, score, label, mask in zip(shown.boxes, shown.scores, shown.labels, masks):
        colour = colours[label]
        if mask is not None:
            out[mask] = (0.5 * out[mask] + 0.5 * colour).astype(np.uint8)
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), tuple(int(c) for c in colour), 2)
        cv2.putText(out, f'{classes[label]} {score:.2f}', (x0, max(y0 - 4, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, tuple(int(c) for c in colour), 1, cv2.LINE_AA)
    return out


def draw_label_map(image: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    return (0.5 * image + 0.5 * palette(n)[labels]).astype(np.uint8)


def coco_results(detections, image_id: int, category_ids: list[int]) -> list[dict]:
    """COCO result records (``bbox`` as x, y, w, h; ``segmentation`` as RLE where the model
    predicts masks)."""
    from pycocotools import mask as mask_utils
    records = []
    for i, (box, score, label) in enumerate(zip(detections.boxes, detections.scores,
                                                detections.labels)):
        x0, y0, x1, y1 = (float(v) for v in box)
        records.append(dict(image_id=image_id, category_id=category_ids[label],
                            bbox=[x0, y0, x1 - x0, y1 - y0], score=float(score)))
        if detections.masks is not None:
            rle = mask_utils.encode(np.asfortranarray(detections.masks[i].astype(np.uint8)))
            records[-1]['segmentation'] = dict(rle, counts=rle['counts'].decode())
    return records
