"""Convert MambaOut checkpoints between classification and detection/segmentation layouts.

    python tools/convert_checkpoint.py SRC DST [--arch ARCH] [--to backbone|official]

--to backbone (default for an official or timm classification checkpoint): an mmengine checkpoint
with 'backbone.' weights and no classification head, for load_from= or
init_cfg=dict(type='Pretrained', checkpoint=DST) of MambaOutBackbone.
--to official (default for a trained detector or segmentor): the backbone in the official
classification layout (trunk only; the backbone's output norms are dropped), for MambaOut.
Every tensor is checked against the model of the arch (given, or inferred from the shapes).
"""
from __future__ import annotations

import argparse

from mambaout_mm.models.mambaout import ARCH_SETTINGS
from mambaout_mm.utils import cli
from mambaout_mm.weights.convert import TARGETS, convert_checkpoint


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        epilog='Layouts read: official, timm (.pth/.safetensors), mmengine (detector/segmentor).')
    parser.add_argument('src', help='source checkpoint')
    parser.add_argument('dst', help='converted checkpoint to write (.pth)')
    parser.add_argument('--arch', choices=list(ARCH_SETTINGS),
                        help='MambaOut variant (default: inferred from the shapes; checked)')
    parser.add_argument('--to', choices=TARGETS,
                        help='target layout (default: official for a detector/segmentor '
                             'checkpoint, backbone otherwise)')
    return cli.add_debug_flag(parser).parse_args()


def main() -> None:
    args = parse_args()
    report = convert_checkpoint(args.src, args.dst, to=args.to, arch=args.arch)
    print('\n'.join(report['messages']))


if __name__ == '__main__':
    cli.run(main)
