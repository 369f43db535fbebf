"""Box and mask post-processing of mmdet's detectors, in numpy float32, step for step: anchors,
the delta box coder, greedy NMS per class (mmcv's ``batched_nms`` offset trick), and pasting 28x28
mask probabilities into the image (``grid_sample``'s bilinear sampling, separable here)."""
from __future__ import annotations

import numpy as np

from .manifest import Anchors, BoxCoder

F32 = np.float32


def grid_anchors(base: np.ndarray, stride: float, height: int, width: int) -> np.ndarray:
    """mmdet's ``AnchorGenerator.single_level_grid_priors``: (H * W * A, 4), position-major."""
    xs = np.arange(width, dtype=F32) * F32(stride)
    ys = np.arange(height, dtype=F32) * F32(stride)
    xx, yy = np.meshgrid(xs, ys)
    shifts = np.stack([xx.ravel(), yy.ravel(), xx.ravel(), yy.ravel()], axis=1)
    return (shifts[:, None, :] + base[None].astype(F32)).reshape(-1, 4)


def level_anchors(anchors: Anchors, level: int, height: int, width: int) -> np.ndarray:
    """The anchors of one level's (height, width) map, as :func:`grid_anchors`."""
    return grid_anchors(np.asarray(anchors.base_anchors[level], F32), anchors.strides[level],
                        height, width)


def decode(priors: np.ndarray, deltas: np.ndarray, coder: BoxCoder,
           max_shape: tuple[int, int]) -> np.ndarray:
    """mmdet's ``delta2bbox``: (N, 4) priors and deltas -> boxes clipped to ``max_shape``."""
    d = deltas * np.asarray(coder.stds, F32) + np.asarray(coder.means, F32)
    pxy = (priors[:, :2] + priors[:, 2:]) * F32(0.5)
    pwh = priors[:, 2:] - priors[:, :2]
    max_ratio = F32(abs(np.log(coder.wh_ratio_clip)))
    gxy = pxy + pwh * d[:, :2]
    gwh = pwh * np.exp(np.clip(d[:, 2:], -max_ratio, max_ratio))
    boxes = np.concatenate([gxy - gwh * F32(0.5), gxy + gwh * F32(0.5)], axis=1)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, max_shape[1])
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, max_shape[0])
    return boxes


def class_deltas(deltas: np.ndarray, labels: np.ndarray, class_agnostic: bool) -> np.ndarray:
    """(N, 4) deltas of each box's ``labels`` from a box head's (N, 4K) ones, as mmdet's
    ``regress_by_class`` (a class-agnostic head has one (N, 4) set)."""
    if class_agnostic:
        return deltas
    return deltas.reshape(len(deltas), -1, 4)[np.arange(len(deltas)), labels]


def roi_levels(boxes: np.ndarray, finest_scale: float, levels: int) -> np.ndarray:
    """mmdet's ``SingleRoIExtractor.map_roi_levels``: the FPN level each box is pooled from."""
    scale = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    return np.clip(np.floor(np.log2(scale / F32(finest_scale) + F32(1e-6))), 0,
                   levels - 1).astype(np.int64)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
        max_keep: int | None = None) -> np.ndarray:
    """Greedy NMS as mmcv's CPU op: indices by descending score, suppressing IoU > threshold;
    stops after ``max_keep`` (the kept prefix is the same)."""
    order = np.argsort(-scores, kind='stable')
    b = boxes[order]
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    alive = np.ones(len(order), bool)
    keep = []
    for i in range(len(order)):
        if not alive[i]:
            continue
        keep.append(order[i])
        if max_keep is not None and len(keep) == max_keep:
            break
        rest = i + 1 + np.flatnonzero(alive[i + 1:])
        w = np.maximum(np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]), 0)
        h = np.maximum(np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]), 0)
        inter = w * h
        alive[rest[inter / (areas[i] + areas[rest] - inter) > iou_threshold]] = False
    return np.asarray(keep, np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray,
                iou_threshold: float, max_keep: int | None = None) -> np.ndarray:
    """NMS within each group (class or level): mmcv's offset of each group's boxes."""
    offsets = groups.astype(F32) * (boxes.max() + F32(1))
    return nms(boxes + offsets[:, None], scores, iou_threshold, max_keep)


def paste_masks(probs: np.ndarray, boxes: np.ndarray, height: int, width: int,
                threshold: float) -> np.ndarray:
    """(N, M, M) mask probabilities in ``boxes`` -> (N, H, W) bool masks, as mmdet's
    ``_do_paste_mask`` on a CPU (``grid_sample``, bilinear, zeros outside,
    ``align_corners=False``, over the region all boxes span). A box of zero width or height
    samples its mask's middle across that whole region, as there."""
    masks = np.zeros((len(probs), height, width), bool)
    if len(probs) == 0:
        return masks
    size = probs.shape[-1]
    region_x = (max(int(np.floor(boxes[:, 0].min())) - 1, 0),
                min(int(np.ceil(boxes[:, 2].max())) + 1, width))
    region_y = (max(int(np.floor(boxes[:, 1].min())) - 1, 0),
                min(int(np.ceil(boxes[:, 3].max())) + 1, height))
    for k, (prob, (x0, y0, x1, y1)) in enumerate(zip(probs, boxes)):
        # outside the box and a pixel around it every weight is zero
        xa, xb = region_x if x1 == x0 else (max(int(np.floor(x0)) - 1, region_x[0]),
                                             min(int(np.ceil(x1)) + 1, region_x[1]))
        ya, yb = region_y if y1 == y0 else (max(int(np.floor(y0)) - 1, region_y[0]),
                                             min(int(np.ceil(y1)) + 1, region_y[1]))
        if xa >= xb or ya >= yb:
            continue
        wy = _bilinear_weights(np.arange(ya, yb, dtype=F32), y0, y1, size)
        wx = _bilinear_weights(np.arange(xa, xb, dtype=F32), x0, x1, size)
        masks[k, ya:yb, xa:xb] = wy @ prob.astype(F32) @ wx.T >= threshold
    return masks


def _bilinear_weights(pixels: np.ndarray, lo: float, hi: float, size: int) -> np.ndarray:
    """(len(pixels), size) weights of ``grid_sample`` at the pixels' centres along one axis."""
    with np.errstate(divide='ignore', invalid='ignore'):
        g = (pixels + F32(0.5) - F32(lo)) / (F32(hi) - F32(lo)) * F32(2) - F32(1)
    g[np.isinf(g)] = 0  # a box of zero width, as mmdet
    u = ((g + F32(1)) * F32(size) - F32(1)) / F32(2)
    i0 = np.floor(u)
    frac = u - i0
    i0 = np.nan_to_num(i0, nan=-2).astype(np.int64)  # NaN (0 / 0) samples nothing
    weights = np.zeros((len(pixels), size), F32)
    rows = np.arange(len(pixels))
    for index, w in ((i0, F32(1) - frac), (i0 + 1, frac)):
        inside = (index >= 0) & (index < size)
        weights[rows[inside], index[inside]] += w[inside]
    return weights
