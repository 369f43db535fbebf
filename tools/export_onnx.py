"""Export a config's network to ONNX and check it in ONNX Runtime against PyTorch.

    python tools/export_onnx.py CONFIG [CHECKPOINT] --out FILE.onnx [--part backbone|model]
                                [--shape H W] [--batch N] [--dynamic] [--tolerance T]

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

from mambaout_mm.onnx_export import PARTS, ExportError, compare, export, network
from mambaout_mm import cli
from mambaout_mm.errors import RunSetupError
from mambaout_mm.run_checks import check_pretrained_weights
from mambaout_mm.checkpoint import local_checkpoint
from mambaout_mm.config import build_model, load_config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', help='trained weights (path or URL); without '
                        'it the config\'s initial weights, for checking the export alone')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--part', choices=PARTS, default='model')
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
    try:
        cfg = load_config(args.config, args.cfg_options)
        model = build_model(cfg)
        if args.checkpoint:
            from mmengine.runner import load_checkpoint
            load_checkpoint(model, local_checkpoint(args.checkpoint, must_exist=True),
                            map_location='cpu', strict=True)
        else:  # the config's own initialisation (e.g. ImageNet weights for the backbone)
            check_pretrained_weights(cfg)
            model.init_weights()
        module = network(model, args.part)
        shape = (args.batch, 3, *args.shape)
        export(module, shape, args.out, dynamic=args.dynamic)
    except (RunSetupError, ExportError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
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


if __name__ == '__main__':
    cli.run(main)
