"""Parameters and MACs of the models configs build (see mambaout_mm.complexity).

    python tools/get_flops.py CONFIG [CONFIG ...] [--shape H W] [--cfg-options ...] [--json FILE]

Defaults follow the paper: 800x1280 for detection (Table 2), 512x2048 for segmentation (Table 3).
Peer configs shipped with the toolboxes work too, e.g.
``mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py``.
"""
from __future__ import annotations

import argparse
import json

from mmengine.config import DictAction

from mambaout_mm.complexity import model_complexity


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='config files (or mmdet::/mmseg:: configs)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input size (default: 800 1280 detection, 512 2048 segmentation)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    parser.add_argument('--json', help='also write the rows to this JSON file')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    rows = [model_complexity(c, tuple(args.shape) if args.shape else None, args.cfg_options)
            for c in args.configs]
    print('| config | input | Params (M) | MACs (G) |\n|---|---|---|---|')
    for row in rows:
        print(f"| {row['config']} | {row['shape'][0]}x{row['shape'][1]} | {row['params_m']:.1f} "
              f"| {row['macs_g']:.0f} |")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=2)


if __name__ == '__main__':
    main()
