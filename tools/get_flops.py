"""Parameters and MACs of the models configs build (see mambaout_mm.evaluation.complexity),
beside the figures published for them (mambaout_mm/data/published_costs.json).

    python tools/get_flops.py CONFIG [CONFIG ...] [--shape H W] [--cfg-options ...] [--json FILE]
    python tools/get_flops.py --cost-table [--json FILE]     (what `make costs` runs)

Sizes follow the papers: 800x1280 for detectors (Table 2), for segmentors the crop's height and
four times that width (512x2048, Table 3). Peer configs shipped with the toolboxes work too, e.g.
``mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py``; configs/peers/ holds the rest.
"""
from __future__ import annotations

import argparse
import json

from mmengine.config import DictAction

from mambaout_mm.evaluation.complexity import model_complexity
from mambaout_mm.evaluation.published_costs import cost_table, published_cost
from mambaout_mm.utils import cli
from mambaout_mm.utils.errors import RunSetupError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='*', help='config files (or mmdet::/mmseg:: configs)')
    parser.add_argument('--cost-table', action='store_true',
                        help='also count every config of the costs table beside the peers '
                             '(docs/results.md; `make costs`)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="input size (default: the papers', see above)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    parser.add_argument('--json', help='also write the rows to this JSON file')
    return cli.add_debug_flag(parser).parse_args()


def main() -> None:
    args = parse_args()
    configs = args.configs + (cost_table() if args.cost_table else [])
    if not configs:
        raise RunSetupError('give CONFIG files, or --cost-table.')
    print('| config | input | Params (M) | MACs (G) | published Params / MACs | source |\n'
          '|---|---|---|---|---|---|', flush=True)
    rows = []
    for config in configs:
        row = model_complexity(config, tuple(args.shape) if args.shape else None,
                               args.cfg_options)
        # published figures hold at the papers' sizes only
        row['published'] = None if args.shape else published_cost(config)
        rows.append(row)
        known = row['published']
        print(f"| {row['config']} | {row['shape'][0]}x{row['shape'][1]} | {row['params_m']:.1f} "
              f"| {row['macs_g']:.0f} | "
              + (f"{known['params_m']} / {known['macs_g']} | {known['source']} |" if known
                 else '- | - |'), flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=2)


if __name__ == '__main__':
    cli.run(main)
