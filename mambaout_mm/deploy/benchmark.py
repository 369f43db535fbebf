"""The whole detector or segmentor, decoded image to result, on each CPU backend and precision
(``tools/benchmark_deploy.py``): PyTorch eager (mmdet's or mmseg's inference, our CPU kernels)
beside every backend of the deployment runtime's registry (:mod:`mambaout_deploy.backends`:
ONNX Runtime fp32, OpenVINO fp32, bf16 and int8), each fed the same image; accuracy of each on a
validation set, and the machine's fp32 floor (the network's FLOPs over the measured GEMM rate).

The timed model (random weights without a checkpoint) is exported end to end, and what a
subject runs from besides the ONNX graphs is made (OpenVINO int8: the backbone's graph quantised
by NNCF on training images); one image at the task's size (:data:`SHAPES`), decoded beforehand,
everything after it timed (pre-processing, networks, NMS, mask pasting), in interleaved runs.
The accuracy model is exported and prepared the same way and scored on the validation images.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

import cv2
import torch
from torch import nn

from mambaout_deploy.backends import ONNX, backends, get_backend
from mambaout_deploy.image import images_in

from ..benchmark.floor import floor_seconds, gemm_gflops
from ..benchmark.tables import markdown_table
from ..utils.errors import RunSetupError

#: the subject the speed-ups and accuracy changes are relative to
REFERENCE = 'pytorch:fp32'
#: the input each task is timed at (height, width): COCO's test scale, ADE20K's crops
SHAPES = {'detection': (800, 1333), 'segmentation': (512, 512)}
#: the shape the benchmark exports at (the graphs take any size)
EXPORT_SHAPE = (256, 320)


def subjects() -> list[str]:
    """``BACKEND:PRECISION`` of PyTorch's reference and of every registered backend."""
    return [REFERENCE, *(f'{name}:{p}' for name, cls in backends().items()
                         for p in cls.artifacts)]


def default_subjects() -> tuple[list[str], dict[str, str]]:
    """The subjects this machine runs, and those it cannot with the reason of each (OpenVINO's
    bf16 where the CPU does not compute it natively)."""
    runs, left_out = [], {}
    for subject in subjects():
        name, precision = subject.split(':')
        reason = None if subject == REFERENCE else get_backend(name).unsupported(precision)
        if reason:
            left_out[subject] = reason
        else:
            runs.append(subject)
    return runs, left_out


def images_of(folder: str) -> list[str]:
    """The images of a folder of the shapes dataset; an error naming it where there are none."""
    images = images_in(folder) if os.path.isdir(folder) else []
    if not images:
        raise RunSetupError(f'No images in {folder}: make the shapes dataset with '
                            f'tools/make_shapes.py, or give its folder with --data.')
    return images


def deploy(config: str, checkpoint: str | None, folder: str, subjects: list[str],
           calibration: list[str]):
    """Build, export end to end and make what each subject runs from; the model, config and
    manifest."""
    from ..utils.config import build_model_with_weights, load_config
    from .end2end import export_end2end
    options = None if checkpoint else {'model.backbone.init_cfg': None}  # random weights
    cfg = load_config(config, options)
    model = build_model_with_weights(cfg, checkpoint).eval()
    manifest = export_end2end(model, cfg, folder, EXPORT_SHAPE,
                              dict(config=config, checkpoint=checkpoint))
    for subject in subjects:
        name, precision = subject.split(':')
        if subject != REFERENCE and get_backend(name).artifacts[precision] != ONNX:
            manifest = get_backend(name).make(folder, precision, calibration)
    return model, cfg, manifest


def predictors(model: nn.Module, cfg, folder: str, subjects: list[str],
               threads: int) -> dict[str, Callable]:
    from mambaout_deploy import load

    from .check import ToolboxInference
    out = {}
    for subject in subjects:
        backend, precision = subject.split(':')
        out[subject] = (ToolboxInference(model, cfg, from_array=True) if subject == REFERENCE
                        else load(folder, backend, threads, precision))
    return out


def accuracy(predict: Callable, manifest, images: list[str], labels: str) -> dict:
    """COCO segm (where predicted) and bbox AP (``labels`` an annotation file) or mIoU (a
    label-map folder) of ``predict`` on ``images``, as percentages."""
    from mambaout_deploy.evaluate import CocoAnnotations, LabelMapScore
    from mambaout_deploy.image import read_image
    from mambaout_deploy.outputs import coco_results
    if manifest.task == 'detection':
        coco = CocoAnnotations(labels, manifest.classes)
        results = []
        for path in images:
            results += coco_results(predict(read_image(path)), coco.image_id(path),
                                    coco.category_ids)
        metrics = coco.evaluate(results)
        return {f'{kind}_AP': 100 * metrics[f'{kind}_mAP'] for kind in ('segm', 'bbox')
                if f'{kind}_mAP' in metrics}
    score = LabelMapScore(labels, len(manifest.classes), manifest.segmentation.reduce_zero_label)
    for path in images:
        score.add(path, predict(read_image(path)))
    return dict(mIoU=100 * score.result()['mIoU'])


def versions() -> str:
    """torch's and the installed backends' versions."""
    installed = [(name, cls().version()) for name, cls in backends().items()]
    return ', '.join([f'torch {torch.__version__}',
                      *(f'{name} {v}' for name, v in installed if v)])


def table_rows(timings: dict, scores: dict, floor: float, first: str) -> list[dict]:
    """A row per subject: median, spread, speed-up over ``first``, time over the floor, and each
    metric with its change from ``first``'s."""
    base = timings[first].median
    rows = []
    for subject, t in timings.items():
        row = dict(subject=subject, median_s=round(t.median, 4), spread=round(t.spread, 3),
                   speedup=round(base / t.median, 3), over_floor=round(t.median / floor, 2))
        for metric, value in scores.get(subject, {}).items():
            row[metric] = round(value, 2)
            row[f'{metric}_change'] = round(value - scores[first][metric], 2)
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    metrics = [k for k in rows[0] if k not in ('subject', 'median_s', 'spread', 'speedup',
                                               'over_floor') and not k.endswith('_change')]
    header = ['backend:precision', 'median (s)', '±', 'speed-up', 'x floor',
              *(h for m in metrics for h in (m, 'change'))]
    return markdown_table(header, [
        [r['subject'], f"{r['median_s']:.3f}", f"{100 * r['spread']:.0f}%",
         f"{r['speedup']:.2f}x", f"{r['over_floor']:.2f}",
         *(c for m in metrics for c in (f'{r[m]:.1f}', f"{r[m + '_change']:+.1f}"))]
        for r in rows])


@dataclass
class Settings:
    """What ``tools/benchmark_deploy.py`` asks for (its options, by the same names)."""
    config: str
    checkpoint: str | None = None
    accuracy: tuple[str, str] | None = None  # CONFIG CHECKPOINT scored on the validation set
    data: str | None = None                  # the shapes dataset; default: the config's layout
    subjects: list[str] | None = None        # default: default_subjects()
    shape: tuple[int, int] | None = None     # default: SHAPES[task]
    threads: int = os.cpu_count() or 1
    warmup: int = 1
    repeats: int = 5
    calibration: int = 32                    # training images for int8
    work_dir: str = 'work_dirs/benchmark_deploy'


def run_benchmark(s: Settings) -> tuple[str, list[dict]]:
    """The header (date, machine, model, versions, floor) and the table's rows."""
    from ..benchmark.timing import Timing, time_interleaved
    from ..datasets.shapes import LAYOUTS
    from ..evaluation.complexity import model_complexity
    from ..utils import cpu_support
    from ..utils.config import load_config, toolbox
    layout = LAYOUTS[toolbox(load_config(s.config))]
    chosen, left_out = (s.subjects, {}) if s.subjects else default_subjects()
    root = s.data or layout.root
    train_images = images_of(os.path.join(root, layout.train_images))[:s.calibration]
    if s.accuracy:  # the data it scores on, checked before the minutes of the timed part
        val_images = images_of(os.path.join(root, layout.val_images))
        labels = os.path.join(root, layout.val_labels)
        if not os.path.exists(labels):
            raise RunSetupError(f'The validation labels {labels} are missing: make the shapes '
                                f'dataset with tools/make_shapes.py, or give its folder with '
                                f'--data.')
    timed = os.path.join(s.work_dir, 'timed')
    model, cfg, manifest = deploy(s.config, s.checkpoint, timed, chosen, train_images)
    shape = tuple(s.shape or SHAPES[manifest.task])
    image = cv2.resize(cv2.imread(train_images[0]), shape[::-1])  # resized as-is by the pipeline
    torch.set_num_threads(s.threads)
    run = predictors(model, cfg, timed, chosen, s.threads)
    times = time_interleaved({k: (lambda p=p: p(image)) for k, p in run.items()}, 'cpu',
                             s.warmup, s.repeats)
    timings = {k: Timing(k, 'infer', k.split(':')[1], t) for k, t in times.items()}
    macs = model_complexity(s.config, shape, None if s.checkpoint else
                            {'model.backbone.init_cfg': None})['macs_g']
    gflops = gemm_gflops(s.threads)
    floor = floor_seconds(macs, gflops)
    scores = {}
    if s.accuracy:
        folder = os.path.join(s.work_dir, 'accuracy')
        acc_model, acc_cfg, acc_manifest = deploy(*s.accuracy, folder, chosen, train_images)
        acc_run = predictors(acc_model, acc_cfg, folder, chosen, s.threads)
        scores = {k: accuracy(p, acc_manifest, val_images, labels) for k, p in acc_run.items()}
    header = (f'{time.strftime("%Y-%m-%d")}; {cpu_support.describe()}; {s.threads} threads; '
              f'{s.config} at {shape[0]}x{shape[1]}, batch 1, {s.repeats} interleaved runs '
              f'after {s.warmup} warm-up; {macs:.0f} GMACs; fp32 GEMM {gflops:.0f} GFLOP/s, '
              f'floor {floor:.3f} s; {versions()}'
              + ''.join(f'; {k} left out: {why}' for k, why in left_out.items()))
    return header, table_rows(timings, scores, floor, chosen[0])
