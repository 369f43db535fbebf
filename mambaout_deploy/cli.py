"""``tools/deploy.py`` / ``python -m mambaout_deploy``: run a deployed model on images.

    python tools/deploy.py FOLDER IMAGE|DIR ... --out DIR [--backend NAME] [--precision P]
        [--calibrate DIR] [--threads N] [--score-thr T] [--eval ANN.json|LABEL_DIR]

The backends and precisions are those registered in :mod:`.backends`. ``--calibrate DIR`` first
makes the artifact ``--backend`` runs ``--precision`` from (OpenVINO int8: quantised by NNCF on
the images in DIR, training images). Writes a picture per image, and
``detections.json`` (COCO results, with ``images.json`` naming the image and category ids) or a
label-map PNG per image; ``--eval`` prints and writes
``metrics.json``: COCO box/mask AP, or mIoU against label maps named like the images.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import cv2

from . import load
from .backends import ONNX, backends, get_backend, precisions
from .errors import DeployError
from .evaluate import CocoAnnotations, LabelMapScore
from .image import image_paths, read_image
from .outputs import SCORE_THRESHOLD, coco_results, draw_detections, draw_label_map


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    runs = '; '.join(f'{name}: {", ".join(cls.artifacts)}' for name, cls in backends().items())
    made = ', '.join(f'{name} {precision}' for name, cls in backends().items()
                     for precision, artifact in cls.artifacts.items() if artifact != ONNX)
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model', help='the folder tools/export_onnx.py --part end2end wrote')
    parser.add_argument('images', nargs='+', help='image files or folders of them')
    parser.add_argument('--out', required=True, help='folder for pictures and results')
    parser.add_argument('--backend', choices=list(backends()), default='onnxruntime')
    parser.add_argument('--precision', choices=precisions(), default='fp32',
                        help=f'what each backend runs ({runs}); where this machine or '
                             f'installation cannot, the error says why')
    parser.add_argument('--calibrate', metavar='DIR',
                        help=f'make what the backend runs the precision from first, calibrated '
                             f'on these images ({made})')
    parser.add_argument('--threads', type=int, help='default: the backend\'s (all cores)')
    parser.add_argument('--score-thr', type=float, default=SCORE_THRESHOLD, help='drawn detections')
    parser.add_argument('--eval', metavar='ANN.json|LABEL_DIR',
                        help='COCO annotations (detection) or a label-map folder (segmentation)')
    parser.add_argument('--debug', action='store_true',
                        help='show the traceback of a known error (or set MAMBAOUT_MM_DEBUG=1)')
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    if args.calibrate:
        get_backend(args.backend).make(args.model, args.precision, image_paths([args.calibrate]))
    model = load(args.model, args.backend, args.threads, args.precision)
    os.makedirs(args.out, exist_ok=True)
    detection = model.manifest.task == 'detection'
    classes = model.classes
    if detection:
        coco = CocoAnnotations(args.eval, classes) if args.eval else None
        category_ids = coco.category_ids if coco else list(range(1, len(classes) + 1))
        results, images = [], []
    else:
        score = (LabelMapScore(args.eval, len(classes),
                               model.manifest.segmentation.reduce_zero_label)
                 if args.eval else None)
    seconds = 0.0
    paths = image_paths(args.images)
    for index, path in enumerate(paths):
        image = read_image(path)
        start = time.perf_counter()
        prediction = model(image)
        seconds += time.perf_counter() - start
        stem = os.path.splitext(os.path.basename(path))[0]
        if detection:
            image_id = coco.image_id(path) if coco else index
            images.append(dict(id=image_id, file_name=os.path.basename(path)))
            results += coco_results(prediction, image_id, category_ids)
            picture = draw_detections(image, prediction, classes, args.score_thr)
        else:
            cv2.imwrite(os.path.join(args.out, f'{stem}.png'), prediction)
            if score:
                score.add(path, prediction)
            picture = draw_label_map(image, prediction, len(classes))
        cv2.imwrite(os.path.join(args.out, f'{stem}_pred.jpg'), picture)
    summary = dict(images=len(paths), backend=args.backend, precision=args.precision,
                   seconds_per_image=round(seconds / len(paths), 4))
    if detection:
        with open(os.path.join(args.out, 'detections.json'), 'w') as f:
            json.dump(results, f)
        with open(os.path.join(args.out, 'images.json'), 'w') as f:
            json.dump(dict(images=images, categories=[
                dict(id=i, name=c) for i, c in zip(category_ids, classes)]), f, indent=1)
        summary['detections'] = len(results)
        if coco:
            summary['metrics'] = coco.evaluate(results)
    elif score:
        summary['metrics'] = score.result()
    with open(os.path.join(args.out, 'metrics.json' if args.eval else 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary = run(args)
    except DeployError as err:  # the exit of mambaout_mm.utils.cli.run, without torch
        if args.debug or os.environ.get('MAMBAOUT_MM_DEBUG', '') not in ('', '0'):
            raise
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0
