"""The whole Mask R-CNN or UperNet on this CPU: PyTorch eager beside ONNX Runtime and OpenVINO
(fp32, bf16 where native, int8), timed side by side, each with its accuracy and the fp32 floor.

    python tools/benchmark_deploy.py CONFIG [CHECKPOINT] [--accuracy CONFIG CHECKPOINT]
        [--data DIR] [--subjects pytorch:fp32 onnxruntime:fp32 openvino:fp32 openvino:bf16
        openvino:int8] [--shape H W] [--threads N] [--repeats 5] [--markdown F] [--json F]

CONFIG (random weights without a checkpoint: timing only) is exported end to end and timed on one
image at --shape (default 800x1333 for detection, 512x512 for segmentation): interleaved runs,
image decoded beforehand, everything after it timed (pre-processing, networks, NMS, mask pasting).
int8: the backbone graph quantised by NNCF on --data's training images (mambaout_runtime/
quantize.py). --accuracy CONFIG CHECKPOINT (the quickstart's) is exported and quantised the same
way and scored on --data's validation images with every backend: COCO segm/bbox AP or mIoU, and
the change from PyTorch fp32. The floor: 2 x the network's MACs at --shape over the best fp32
GEMM rate measured here.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import cv2
import torch

from mambaout_mm.utils import cli, cpu_support
from mambaout_mm.deploy.benchmark import (SHAPES, SUBJECTS, accuracy, default_subjects,
                                            gemm_gflops, predictors)
from mambaout_mm.benchmark.timing import Timing, time_interleaved
from mambaout_mm.datasets.shapes import LAYOUTS
from mambaout_mm.utils.config import build_model_with_weights, load_config, toolbox
from mambaout_mm.utils.errors import RunSetupError
from mambaout_runtime.image import images_in



def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?')
    parser.add_argument('--accuracy', nargs=2, metavar=('CONFIG', 'CHECKPOINT'))
    parser.add_argument('--data', help='a generated shapes dataset (default: data/coco_shapes '
                                       'or data/ade_shapes, as tools/make_shapes.py writes)')
    parser.add_argument('--subjects', nargs='+', choices=SUBJECTS,
                        help='default: all, less openvino:bf16 where bf16 is not native')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'))
    parser.add_argument('--threads', type=int, default=os.cpu_count())
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--calibration', type=int, default=32, help='int8 calibration images')
    parser.add_argument('--work-dir', default='work_dirs/benchmark_deploy')
    parser.add_argument('--markdown')
    parser.add_argument('--json')
    return cli.add_debug_flag(parser).parse_args()


def deploy(config: str, checkpoint: str | None, folder: str, subjects: list[str],
           calibration: list[str]):
    """Build, export end to end and (for int8) quantise; the model, config and manifest."""
    from mambaout_mm.deploy.end2end import export_end2end
    from mambaout_runtime.quantize import quantize
    options = None if checkpoint else {'model.backbone.init_cfg': None}  # random weights
    cfg = load_config(config, options)
    model = build_model_with_weights(cfg, checkpoint).eval()
    manifest = export_end2end(model, cfg, folder, (256, 320),
                              dict(config=config, checkpoint=checkpoint))
    if 'openvino:int8' in subjects:
        quantize(folder, calibration)
    return model, cfg, manifest


def images_of(folder: str) -> list[str]:
    """The images of a folder of the shapes dataset; an error naming it where there are none."""
    images = images_in(folder) if os.path.isdir(folder) else []
    if not images:
        raise RunSetupError(f'No images in {folder}: make the shapes dataset with '
                            f'tools/make_shapes.py, or give its folder with --data.')
    return images


def main() -> None:
    args = parse_args()
    from mmengine.logging import MMLogger
    MMLogger.get_instance('benchmark_deploy', log_level='WARNING')  # not a line per weight
    subjects = args.subjects or default_subjects()
    cfg = load_config(args.config)
    scope = toolbox(cfg)
    layout = LAYOUTS[scope]
    root = args.data or layout.root
    train_images = images_of(os.path.join(root, layout.train_images))[:args.calibration]
    if args.accuracy:  # the data it scores on, checked before the minutes of the timed part
        val_images = images_of(os.path.join(root, layout.val_images))
        labels = os.path.join(root, layout.val_labels)
        if not os.path.exists(labels):
            raise RunSetupError(f'The validation labels {labels} are missing: make the shapes '
                                f'dataset with tools/make_shapes.py, or give its folder with '
                                f'--data.')
    model, cfg, manifest = deploy(args.config, args.checkpoint,
                                  os.path.join(args.work_dir, 'timed'), subjects, train_images)
    shape = tuple(args.shape or SHAPES[manifest['task']])
    image = cv2.resize(cv2.imread(train_images[0]), shape[::-1])  # resized as-is by the pipeline
    torch.set_num_threads(args.threads)
    run = predictors(model, cfg, os.path.join(args.work_dir, 'timed'), subjects, args.threads)
    times = time_interleaved({s: (lambda p=p: p(image)) for s, p in run.items()}, 'cpu',
                             args.warmup, args.repeats)
    timings = {s: Timing(s, 'infer', s.split(':')[1], t) for s, t in times.items()}
    from mambaout_mm.evaluation.complexity import model_complexity
    macs = model_complexity(args.config, shape, None if args.checkpoint else
                            {'model.backbone.init_cfg': None})['macs_g']
    gflops = gemm_gflops(args.threads)
    floor = 2 * macs / gflops
    scores = {}
    if args.accuracy:
        acc_model, acc_cfg, acc_manifest = deploy(*args.accuracy,
                                                  os.path.join(args.work_dir, 'accuracy'),
                                                  subjects, train_images)
        acc_run = predictors(acc_model, acc_cfg, os.path.join(args.work_dir, 'accuracy'),
                             subjects, args.threads)
        scores = {s: accuracy(p, acc_manifest, val_images, labels) for s, p in acc_run.items()}
    header = (f'{time.strftime("%Y-%m-%d")}; {cpu_support.describe()}; {args.threads} threads; '
              f'{args.config} at {shape[0]}x{shape[1]}, batch 1, {args.repeats} interleaved runs '
              f'after {args.warmup} warm-up; {macs:.0f} GMACs; fp32 GEMM {gflops:.0f} GFLOP/s, '
              f'floor {floor:.3f} s; torch {torch.__version__}, {versions()}')
    rows = table_rows(timings, scores, floor, subjects[0])
    text = header + '\n\n' + markdown(rows)
    print(text)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(text + '\n')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(header=header, python=platform.python_version(), rows=rows), f,
                      indent=2)


def versions() -> str:
    import onnxruntime
    out = f'onnxruntime {onnxruntime.__version__}'
    try:
        import openvino
    except ImportError:
        return out
    return out + f', openvino {openvino.__version__.split("-")[0]}'


def table_rows(timings: dict, scores: dict, floor: float, first: str) -> list[dict]:
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
    head = ('| backend:precision | median (s) | ± | speed-up | x floor | ' +
            ''.join(f'{m} | change | ' for m in metrics))
    lines = [head.rstrip(), '|' + '---|' * (5 + 2 * len(metrics))]
    for r in rows:
        lines.append(f"| {r['subject']} | {r['median_s']:.3f} | {100 * r['spread']:.0f}% | "
                     f"{r['speedup']:.2f}x | {r['over_floor']:.2f} | " +
                     ''.join(f"{r[m]:.1f} | {r[m + '_change']:+.1f} | " for m in metrics))
    return '\n'.join(line.rstrip() for line in lines)


if __name__ == '__main__':
    cli.run(main)
