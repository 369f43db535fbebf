"""Speed and memory of our MambaOut backbone beside timm's MambaOut, ConvNeXt-T, Swin-T, ResNet-50.

    python tools/benchmark.py [--subjects mambaout_t timm_mambaout_t ...] [--shape N C H W]
        [--modes infer train] [--dtypes fp32 bf16] [--repeats 5] [--compile]
        [--json FILE] [--markdown FILE] [--plot FILE.png]

Same input for all, interleaved runs, median and spread, ratios to the first subject; peak memory
per subject in a fresh process. Defaults: 2x3x512x512 (the segmentation crops), fp32 and bf16.
"""
from __future__ import annotations

import argparse
import json
import platform

import torch

from mambaout_mm.benchmark import (SUBJECTS, build_subjects, feature_agreement, markdown,
                                   run_benchmark, to_rows)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--subjects', nargs='+', choices=sorted(SUBJECTS),
                        default=['mambaout_t', 'timm_mambaout_t', 'convnext_t', 'swin_t',
                                 'resnet50'])
    parser.add_argument('--shape', type=int, nargs=4, default=[2, 3, 512, 512],
                        metavar=('N', 'C', 'H', 'W'), help='input (detection: 1 3 800 1280)')
    parser.add_argument('--modes', nargs='+', choices=['infer', 'train'],
                        default=['infer', 'train'])
    parser.add_argument('--dtypes', nargs='+', choices=['fp32', 'bf16', 'fp16'],
                        default=['fp32', 'bf16'], help='fp16 runs on a GPU only')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--compile', action='store_true', help='torch.compile every subject')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory probes')
    parser.add_argument('--json', help='write the rows and the machine to this JSON file')
    parser.add_argument('--markdown', help='write the markdown table to this file')
    parser.add_argument('--plot', help='throughput against MACs, to this PNG')
    return parser.parse_args()


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    model = next((line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo')
                  if line.startswith('model name')), platform.processor())
    return f'{model}, {torch.get_num_threads()} threads'


def plot(rows: list[dict], shape: list[int], path: str) -> None:
    """Inference throughput (fp32) against MACs of each subject at this input."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from mmengine.analysis import get_model_complexity_info

    points = [r for r in rows if r['mode'] == 'infer' and r['dtype'] == 'fp32']
    models = build_subjects([r['subject'] for r in points])
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in points:
        model = models[r['subject']]
        model.eval()  # not chained: mmdet's ResNet.train() returns None
        with torch.no_grad():
            macs = get_model_complexity_info(model, inputs=torch.randn(*shape), show_table=False,
                                             show_arch=False)['flops'] / 1e9
        ax.scatter(macs, r['images_per_s'])
        ax.annotate(r['subject'], (macs, r['images_per_s']), textcoords='offset points',
                    xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f'MACs (G) at {shape[2]}x{shape[3]}, batch {shape[0]}')
    ax.set_ylabel('images / s (fp32 inference)')
    ax.set_title(machine(), fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    args = parse_args()
    if {'mambaout_t', 'timm_mambaout_t'} <= set(args.subjects):
        models = build_subjects(['mambaout_t', 'timm_mambaout_t'])
        diff = feature_agreement(models['mambaout_t'], models['timm_mambaout_t'],
                                 torch.randn(*args.shape))
        print(f'timm_mambaout_t has our weights: stage features differ by at most {diff:.1e}')
    results = run_benchmark(args.subjects, args.shape, args.modes, args.dtypes, args.device,
                            args.warmup, args.repeats, args.compile, not args.no_memory)
    rows = to_rows(results, args.shape[0])
    table = markdown(rows, args.subjects[0])
    header = (f'{machine()}; input {"x".join(map(str, args.shape))}; {args.repeats} interleaved '
              f'runs after {args.warmup} warm-up; torch {torch.__version__}'
              f'{"; torch.compile" if args.compile else ""}')
    print(header + '\n\n' + table)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(header + '\n\n' + table + '\n')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(machine=machine(), shape=args.shape, rows=rows), f, indent=2)
    if args.plot:
        plot(rows, args.shape, args.plot)


if __name__ == '__main__':
    main()
