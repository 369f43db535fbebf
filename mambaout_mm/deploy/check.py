"""The end-to-end export's check: the deployed folder, run by :mod:`mambaout_deploy`, against
mmdet's and mmseg's own inference of the same model on the same images.

Detections above a score threshold must match one to one: the same label, boxes within 1 px,
scores within 1e-3, mask IoU >= 0.95 (a detection whose score is within the score tolerance of
the threshold may be missing on either side); label maps must agree on >= 99.9% of pixels."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mambaout_deploy.outputs import SCORE_THRESHOLD

BOX_PX, SCORE, MASK_IOU, PIXELS = 1.0, 1e-3, 0.95, 0.999


@dataclass
class ImageCheck:
    image: str
    compared: int = 0               # detections matched, or pixels
    worst: dict = field(default_factory=dict)  # largest box/score error, smallest IoU/agreement
    problems: list[str] = field(default_factory=list)


#: the measures of :attr:`ImageCheck.worst` where more is better (the others are errors)
AGREEMENTS = ('mask_iou', 'pixels_equal')


def worst_over(checks: list[ImageCheck]) -> dict[str, float]:
    """Each measure's worst over the images: the largest error, the smallest agreement."""
    return {k: (min if k in AGREEMENTS else max)(c.worst[k] for c in checks)
            for k in checks[0].worst}


def check_images(paths: list[str] | None, workdir: str) -> list[str]:
    """The images given (files or folders; an error when there are none), or four generated
    shapes images."""
    from mambaout_deploy.image import image_paths, images_in
    if paths:
        return image_paths(paths)
    from ..datasets import LAYOUTS, make_coco_shapes
    make_coco_shapes(workdir, num_train=1, num_val=4, image_size=(240, 320), seed=1)
    return images_in(os.path.join(workdir, LAYOUTS['mmdet'].val_images))


class ToolboxInference:
    """mmdet's or mmseg's own inference with the config's test pipeline (annotations left out),
    of an image file or, with ``from_array``, a decoded (BGR) image; returned as the runtime
    returns it: ``Detections`` or a label map."""

    def __init__(self, model: nn.Module, cfg, from_array: bool = False) -> None:
        from mmengine.dataset import Compose

        from ..utils.config import toolbox_registry
        toolbox_registry(cfg, 'TRANSFORMS')  # the toolbox's transforms as the default scope
        steps = [dict(t) for t in cfg.test_dataloader.dataset.pipeline
                 if t['type'] != 'LoadAnnotations']
        if from_array:
            steps[0] = dict(type='LoadImageFromNDArray')
        self.pipeline, self.model, self.from_array = Compose(steps), model.eval(), from_array

    def __call__(self, image: str | np.ndarray):
        from mmengine.dataset import pseudo_collate

        from mambaout_deploy.detections import Detections
        inputs = dict(img=image) if self.from_array else dict(img_path=image)
        with torch.inference_mode():
            sample = self.model.test_step(pseudo_collate([self.pipeline(
                dict(inputs, img_id=0))]))[0]
        if hasattr(sample, 'pred_sem_seg'):
            return sample.pred_sem_seg.data[0].numpy()
        p = sample.pred_instances
        return Detections(p.bboxes.numpy(), p.scores.numpy(), p.labels.numpy(),
                          p.masks.numpy() if 'masks' in p else None)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def compare_detections(reference, ours, threshold: float, image: str) -> ImageCheck:
    ref, ours = reference.above(threshold), ours.above(threshold)
    r_boxes, r_scores, r_labels, r_masks = ref.boxes, ref.scores, ref.labels, ref.masks
    result = ImageCheck(image, worst=dict(box_px=0.0, score=0.0, mask_iou=1.0))
    unmatched = set(range(len(ours.scores)))
    for i in range(len(r_scores)):
        candidates = [j for j in unmatched if ours.labels[j] == r_labels[i]]
        if not candidates:
            if r_scores[i] > threshold + SCORE:
                result.problems.append(f'{image}: mmdet detection {i} ({r_labels[i]}, score '
                                       f'{r_scores[i]:.4f}) has no match')
            continue
        # the nearest box; among boxes within the tolerance (masks' extents are often the
        # same box: Mask2Former's), the nearest score
        j = min(candidates, key=lambda j: (max(np.abs(ours.boxes[j] - r_boxes[i]).max(), BOX_PX),
                                           abs(ours.scores[j] - r_scores[i])))
        unmatched.discard(j)
        box, score = np.abs(ours.boxes[j] - r_boxes[i]).max(), abs(ours.scores[j] - r_scores[i])
        iou = 1.0 if r_masks is None else mask_iou(ours.masks[j], r_masks[i])
        w = result.worst
        w.update(box_px=max(w['box_px'], float(box)), score=max(w['score'], float(score)),
                 mask_iou=min(w['mask_iou'], iou))
        result.compared += 1
        if box > BOX_PX or score > SCORE or iou < MASK_IOU:
            result.problems.append(f'{image}: detection {i} (label {r_labels[i]}): box off by '
                                   f'{box:.2f} px, score by {score:.1e}, mask IoU {iou:.3f}')
    for j in unmatched:
        if ours.scores[j] > threshold + SCORE:
            result.problems.append(f'{image}: deployed detection ({ours.labels[j]}, score '
                                   f'{ours.scores[j]:.4f}) not in mmdet\'s')
    return result


def compare_label_maps(ref: np.ndarray, ours: np.ndarray, image: str) -> ImageCheck:
    agree = float((ref == ours).mean()) if ref.shape == ours.shape else 0.0
    result = ImageCheck(image, compared=ref.size, worst=dict(pixels_equal=agree))
    if agree < PIXELS:
        result.problems.append(f'{image}: label maps agree on {100 * agree:.3f}% of pixels '
                               f'(shapes {ref.shape} and {ours.shape})')
    return result


def check_deployed(model: nn.Module, cfg, folder: str, images: list[str] | None = None,
                   backend: str = 'onnxruntime',
                   threshold: float = SCORE_THRESHOLD) -> list[ImageCheck]:
    """Each image's comparison of the deployed folder with the toolbox's own inference."""
    from mambaout_deploy import load
    deployed = load(folder, backend)
    with tempfile.TemporaryDirectory() as workdir:
        paths = check_images(images, workdir)
        toolbox = ToolboxInference(model, cfg)
        references = [toolbox(p) for p in paths]
        if isinstance(references[0], np.ndarray):
            return [compare_label_maps(r, deployed(p), os.path.basename(p))
                    for r, p in zip(references, paths)]
        return [compare_detections(r, deployed(p), threshold, os.path.basename(p))
                for r, p in zip(references, paths)]
