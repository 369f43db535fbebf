"""Generate the toy shapes datasets: ``python tools/make_shapes.py {coco,ade} OUT_DIR [...]``."""
from __future__ import annotations

import argparse
import json

from mambaout_mm.datasets import make_ade_shapes, make_coco_shapes
from mambaout_mm.utils import cli


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('format', choices=('coco', 'ade'),
                        help='coco: instance segmentation (COCO layout); ade: semantic (ADE20K)')
    parser.add_argument('out_dir', help='dataset root to write (skipped if already generated)')
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-val', type=int, default=50)
    parser.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'),
                        help='image size (default: 192 256 for coco, 128 128 for ade)')
    parser.add_argument('--seed', type=int, default=0)
    args = cli.add_debug_flag(parser).parse_args(argv)
    make = make_coco_shapes if args.format == 'coco' else make_ade_shapes
    kwargs = dict(num_train=args.num_train, num_val=args.num_val, seed=args.seed)
    if args.size:
        kwargs['image_size'] = tuple(args.size)
    try:
        summary = make(args.out_dir, **kwargs)
    except ValueError as err:
        parser.error(str(err))
    state = 'wrote' if summary['generated'] else 'already present, left as is:'
    h, w = summary['params']['image_size']
    print(f"{state} {args.format} shapes dataset ({h}x{w}, seed {args.seed}) at {summary['root']}")
    for split, n in summary['images'].items():
        extra = (f", {summary['instances'][split]} instances" if 'instances' in summary else
                 ', pixels ' + json.dumps(summary['pixels'][split]))
        print(f'  {split}: {n} images{extra}')
    return summary


if __name__ == '__main__':
    cli.run(main)
