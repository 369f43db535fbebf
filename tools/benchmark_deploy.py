"""The whole detector or segmentor (any family --part end2end exports) on this CPU: PyTorch eager
beside every backend and precision of the deployment runtime (ONNX Runtime fp32; OpenVINO fp32,
bf16 where native, int8), timed side by side, each with its accuracy and the fp32 floor.

    python tools/benchmark_deploy.py CONFIG [CHECKPOINT] [--accuracy CONFIG CHECKPOINT]
        [--data DIR] [--subjects pytorch:fp32 onnxruntime:fp32 openvino:fp32 openvino:bf16
        openvino:int8] [--shape H W] [--threads N] [--repeats 5] [--markdown F] [--json F]

CONFIG (random weights without a checkpoint: timing only) is exported end to end and timed on one
image at --shape (default 800x1333 for detection, 512x512 for segmentation): interleaved runs,
image decoded beforehand, everything after it timed (pre-processing, networks, NMS, mask pasting).
int8: the backbone graph quantised by NNCF on --data's training images. --accuracy CONFIG
CHECKPOINT (the quickstart's) is exported and quantised the same way and scored on --data's
validation images with every backend: COCO segm/bbox AP or mIoU, and the change from PyTorch
fp32. The floor: 2 x the network's MACs at --shape over the best fp32 GEMM rate measured here.
How: mambaout_mm/deploy/benchmark.py.
"""
from __future__ import annotations

import argparse
import json
import platform

from mambaout_mm.deploy.benchmark import Settings, markdown, run_benchmark, subjects
from mambaout_mm.utils import cli


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?')
    parser.add_argument('--accuracy', nargs=2, metavar=('CONFIG', 'CHECKPOINT'))
    parser.add_argument('--data', help='a generated shapes dataset (default: data/coco_shapes '
                                       'or data/ade_shapes, as tools/make_shapes.py writes)')
    parser.add_argument('--subjects', nargs='+', choices=subjects(),
                        help='default: all this machine runs (openvino:bf16 where bf16 is native)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'))
    parser.add_argument('--threads', type=int, default=Settings.threads)
    parser.add_argument('--warmup', type=int, default=Settings.warmup)
    parser.add_argument('--repeats', type=int, default=Settings.repeats)
    parser.add_argument('--calibration', type=int, default=Settings.calibration,
                        help='int8 calibration images')
    parser.add_argument('--work-dir', default=Settings.work_dir)
    parser.add_argument('--markdown')
    parser.add_argument('--json')
    return cli.add_debug_flag(parser).parse_args()


def main() -> None:
    args = parse_args()
    from mmengine.logging import MMLogger
    MMLogger.get_instance('benchmark_deploy', log_level='WARNING')  # not a line per weight
    settings = Settings(**{k: v for k, v in vars(args).items()
                           if k not in ('markdown', 'json', 'debug')})
    header, rows = run_benchmark(settings)
    text = header + '\n\n' + markdown(rows)
    print(text)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(text + '\n')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(header=header, python=platform.python_version(), rows=rows), f,
                      indent=2)


if __name__ == '__main__':
    cli.run(main)
