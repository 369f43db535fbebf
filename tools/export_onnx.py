"""Export a config's network to ONNX and check it in ONNX Runtime against PyTorch.

    python tools/export_onnx.py CONFIG [CHECKPOINT] --out FILE.onnx [--part backbone|model]
                                [--shape H W] [--batch N] [--dynamic] [--tolerance T]
    python tools/export_onnx.py CONFIG [CHECKPOINT] --part end2end --out FOLDER
                                [--check-images IMG|DIR ...] [--score-thr T]

``--part end2end``: the whole model, any family the project trains (Mask R-CNN, Cascade Mask
R-CNN, RetinaNet, DINO, Mask2Former: image -> boxes, scores, labels, masks; UperNet, Mask2Former
semantic: image -> label map), as a folder that ``tools/deploy.py`` runs without torch (graphs
and a manifest: see mambaout_mm/deploy/end2end.py), checked on images (default: four generated
shapes images) against mmdet's or mmseg's own inference; exit 1 when they differ beyond the
tolerances of mambaout_mm/deploy/check.py, printing what differs.

``--part model``: a segmentor end to end (image -> per-pixel logits) or a two-stage detector's
dense part (image -> FPN maps, RPN objectness and box deltas); ``backbone``: the four stage maps.
The input is the image as loaded (0-255, the dataset's channel order); normalisation is in the
graph (not for ``--part backbone``, which takes normalised input). The check runs the graph and
PyTorch on one random image (two sizes with ``--dynamic``) and exits 1 when the largest error,
relative to the largest output value, exceeds ``--tolerance``.
"""
from __future__ import annotations

import argparse
import sys

from mmengine.config import DictAction
from mmengine.logging import MMLogger

from mambaout_deploy.outputs import SCORE_THRESHOLD
from mambaout_mm.deploy.onnx_export import PARTS, compare, export, network
from mambaout_mm.engine.run_checks import check_pretrained_weights
from mambaout_mm.utils import cli
from mambaout_mm.utils.config import build_model_with_weights, load_config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', help='trained weights (path or URL); without '
                        'it the config\'s initial weights, for checking the export alone')
    parser.add_argument('--out', required=True,
                        help='the .onnx file to write (--part end2end: a folder)')
    parser.add_argument('--part', choices=(*PARTS, 'end2end'), default='model')
    parser.add_argument('--check-images', nargs='+', metavar='IMG|DIR',
                        help='end2end: images to compare on (default: generated shapes images)')
    parser.add_argument('--score-thr', type=float, default=SCORE_THRESHOLD,
                        help='end2end: detections compared from this score up')
    parser.add_argument('--shape', type=int, nargs=2, default=(512, 512), metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--dynamic', action='store_true', help='free batch, height and width')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest error allowed, relative to the largest output value')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return cli.add_debug_flag(parser).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    MMLogger.get_instance('export_onnx', log_level='WARNING')  # not a line per initialised weight
    cfg = load_config(args.config, args.cfg_options)
    if not args.checkpoint:  # the config's own initialisation (e.g. ImageNet weights)
        check_pretrained_weights(cfg)
    model = build_model_with_weights(cfg, args.checkpoint)
    if args.part == 'end2end':
        return end2end(model, cfg, args)
    module = network(model, args.part)
    shape = (args.batch, 3, *args.shape)
    export(module, shape, args.out, dynamic=args.dynamic)
    print(f'wrote {args.out} ({args.part} of {args.config}, traced at {"x".join(map(str, shape))}'
          f'{", dynamic batch, height and width" if args.dynamic else ""})')
    shapes = [shape] + ([(args.batch + 1, 3, args.shape[0] + 64, args.shape[1] + 32)]
                        if args.dynamic else [])
    worst = 0.0
    for checked in shapes:
        agreement = compare(module, args.out, checked)
        print(f'ONNX Runtime vs PyTorch, {agreement}')
        worst = max(worst, agreement.max_rel)
    if worst > args.tolerance:
        print(f'error: relative error {worst:.2e} exceeds --tolerance {args.tolerance:.0e}',
              file=sys.stderr)
        return 1
    return 0


def end2end(model, cfg, args: argparse.Namespace) -> int:
    """Export the deployable folder, then compare it with the toolbox on images."""
    from mambaout_mm.deploy.check import check_deployed, worst_over
    from mambaout_mm.deploy.end2end import export_end2end
    from mambaout_mm.utils.config import toolbox
    manifest = export_end2end(model, cfg, args.out, tuple(args.shape),
                              dict(config=args.config, checkpoint=args.checkpoint))
    print(f"wrote {args.out}: {', '.join(manifest.graphs.values())} and manifest.json "
          f"({manifest.task}, {len(manifest.classes)} classes)")
    checks = check_deployed(model, cfg, args.out, args.check_images, threshold=args.score_thr)
    problems = [p for c in checks for p in c.problems]
    for c in checks:
        print(f'{c.image}: {c.compared} compared, ' + ', '.join(
            f'{k} {v:.3g}' for k, v in c.worst.items()))
    for p in problems:
        print(f'differs: {p}', file=sys.stderr)
    if problems:
        print(f'error: the deployed model differs from {toolbox(cfg)} on '
              f'{len(problems)} count(s)', file=sys.stderr)
        return 1
    worst = worst_over(checks)
    print(f'deployed model agrees with {toolbox(cfg)} on {len(checks)} images '
          f'({sum(c.compared for c in checks)} compared; worst: ' +
          ', '.join(f'{k} {v:.3g}' for k, v in worst.items()) + ')')
    return 0


if __name__ == '__main__':
    cli.run(main)
