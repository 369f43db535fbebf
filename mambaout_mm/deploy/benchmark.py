"""The whole detector or segmentor, decoded image to result, on each CPU backend and precision:
PyTorch eager (mmdet's or mmseg's inference, our CPU kernels), ONNX Runtime fp32 and OpenVINO
fp32, bf16 and int8 (:mod:`mambaout_runtime`), each fed the same image; accuracy of each on a
validation set, and the machine's fp32 floor (the network's FLOPs over the measured GEMM rate)."""
from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn

#: ``BACKEND:PRECISION``; the first is the reference of the speed-ups and accuracy changes
SUBJECTS = ('pytorch:fp32', 'onnxruntime:fp32', 'openvino:fp32', 'openvino:bf16',
            'openvino:int8')
#: the input each task is timed at (height, width): COCO's test scale, ADE20K's crops
SHAPES = {'detection': (800, 1333), 'segmentation': (512, 512)}


def default_subjects() -> list[str]:
    """All, less OpenVINO's bf16 where the CPU does not compute it natively."""
    from mambaout_runtime.engines import native_bf16, openvino_core
    return [s for s in SUBJECTS if s != 'openvino:bf16' or native_bf16(openvino_core())]


def predictors(model: nn.Module, cfg, folder: str, subjects: list[str],
               threads: int) -> dict[str, Callable]:
    from mambaout_runtime import load

    from .check import ToolboxInference
    out = {}
    for subject in subjects:
        backend, precision = subject.split(':')
        out[subject] = (ToolboxInference(model, cfg, from_array=True) if backend == 'pytorch'
                        else load(folder, backend, threads, precision))
    return out


def gemm_gflops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """The best fp32 matrix-product rate of this machine (GFLOP/s) with ``threads`` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float('inf')
    for _ in range(repeats + 1):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def accuracy(predict: Callable, manifest: dict, images: list[str], labels: str) -> dict:
    """COCO segm/bbox AP (``labels`` an annotation file) or mIoU (a label-map folder) of
    ``predict`` on ``images``, as percentages."""
    from mambaout_runtime.evaluate import CocoAnnotations, LabelMapScore
    from mambaout_runtime.image import read_image
    from mambaout_runtime.outputs import coco_results
    if manifest['task'] == 'detection':
        coco = CocoAnnotations(labels, manifest['classes'])
        results = []
        for path in images:
            results += coco_results(predict(read_image(path)), coco.image_id(path),
                                    coco.category_ids)
        metrics = coco.evaluate(results)
        return dict(segm_AP=100 * metrics['segm_mAP'], bbox_AP=100 * metrics['bbox_mAP'])
    score = LabelMapScore(labels, len(manifest['classes']), manifest['reduce_zero_label'])
    for path in images:
        score.add(path, predict(read_image(path)))
    return dict(mIoU=100 * score.result()['mIoU'])
