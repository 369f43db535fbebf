"""Accuracy of deployed predictions: COCO box and mask AP (pycocotools), or mIoU against a folder
of label-map PNGs (mmseg's definition: per-class intersection over union, summed over images)."""
from __future__ import annotations

import os

import cv2
import numpy as np

from .errors import DeployError


class AnnotationError(DeployError, ValueError):
    """Annotations that do not fit the images or the model; the message says how."""


class CocoAnnotations:
    """A COCO annotation file, and the ids our images and classes have in it."""

    def __init__(self, path: str, classes: list[str]) -> None:
        from pycocotools.coco import COCO
        self.coco = COCO(path)
        names = {c['name']: c['id'] for c in self.coco.loadCats(self.coco.getCatIds())}
        missing = [c for c in classes if c not in names]
        if missing:
            raise AnnotationError(f'{path} has no categories {missing}: the model was trained '
                                  'on other classes.')
        self.category_ids = [names[c] for c in classes]
        self.image_ids = {img['file_name']: img['id'] for img in self.coco.dataset['images']}

    def image_id(self, path: str) -> int:
        name = os.path.basename(path)
        if name not in self.image_ids:
            raise AnnotationError(f'{name} is not an image of the annotation file.')
        return self.image_ids[name]

    def evaluate(self, results: list[dict]) -> dict[str, float]:
        """bbox and (for results with masks) segm AP, AP50, AP75 over the images predicted."""
        from pycocotools.cocoeval import COCOeval
        metrics = {}
        if not results:
            return dict(bbox_mAP=0.0, segm_mAP=0.0)
        image_ids = sorted({r['image_id'] for r in results})
        for kind in ('bbox', 'segm') if 'segmentation' in results[0] else ('bbox',):
            run = COCOeval(self.coco, self.coco.loadRes(results), kind)
            run.params.imgIds = image_ids
            run.evaluate()
            run.accumulate()
            run.summarize()
            metrics.update({f'{kind}_mAP': float(run.stats[0]),
                            f'{kind}_mAP_50': float(run.stats[1]),
                            f'{kind}_mAP_75': float(run.stats[2])})
        return metrics


class LabelMapScore:
    """mIoU against ground-truth PNGs named like the images (``reduce_zero_label`` as mmseg:
    label 0 ignored, the rest shifted down)."""

    def __init__(self, folder: str, num_classes: int, reduce_zero_label: bool) -> None:
        self.folder, self.n, self.reduce = folder, num_classes, reduce_zero_label
        self.intersect = np.zeros(num_classes)
        self.union = np.zeros(num_classes)

    def add(self, image_path: str, labels: np.ndarray) -> None:
        stem = os.path.splitext(os.path.basename(image_path))[0]
        path = os.path.join(self.folder, stem + '.png')
        gt = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if gt is None:
            raise AnnotationError(f'No label map {path} for {image_path}.')
        if gt.shape != labels.shape:
            raise AnnotationError(f'{path} is {gt.shape}, the image {labels.shape}.')
        gt = gt.astype(np.int64)
        if self.reduce:
            gt = np.where(gt == 0, 255, gt - 1)
        valid = gt < self.n
        pred, gt = labels[valid], gt[valid]
        hit = np.bincount(pred[pred == gt], minlength=self.n)[:self.n]
        area_p = np.bincount(pred, minlength=self.n)[:self.n]
        area_g = np.bincount(gt, minlength=self.n)[:self.n]
        self.intersect += hit
        self.union += area_p + area_g - hit

    def result(self) -> dict[str, float]:
        present = self.union > 0
        return dict(mIoU=float((self.intersect[present] / self.union[present]).mean()))
