"""Speed and memory of our MambaOut backbone beside timm's MambaOut, ConvNeXt-T, Swin-T, ResNet-50.

    python tools/benchmark.py [--subjects mambaout_t timm_mambaout_t ...] [--shape N C H W]
        [--modes infer train] [--dtypes fp32 bf16] [--repeats 5] [--compile]
        [--json FILE] [--markdown FILE] [--plot FILE.png]
    python tools/benchmark.py --subjects configs/mask_rcnn/mambaout_tiny_1x.py \
        mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py ...

Same input for all, interleaved runs, median and spread, ratios to the first subject; peak memory
per subject in a fresh process. Subjects are backbones or configs (whole detectors/segmentors on
synthetic annotated images). Default input: 2x3x512x512 (segmentation crops) for backbones and
segmentors, 1x3x800x1280 when a detector is among the subjects; fp32, and bf16 where the GPU or
the CPU computes it natively (bf16 asked for on another CPU runs emulated, and the header says so).
``mambaout_t_onnxruntime``: our backbone (same weights) exported to ONNX and run by ONNX Runtime on
the CPU; it is timed for fp32 inference only.
"""
from __future__ import annotations

import argparse
import json
import torch

from mambaout_mm import cpu_support
from mambaout_mm.benchmark import (SUBJECTS, build_subjects, default_dtypes, default_shape,
                                   feature_agreement, is_config, markdown, run_benchmark, to_rows)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--subjects', nargs='+', metavar='SUBJECT',
                        default=['mambaout_t', 'timm_mambaout_t', 'convnext_t', 'swin_t',
                                 'resnet50'],
                        help=f'backbones ({", ".join(sorted(SUBJECTS))}) or config files')
    parser.add_argument('--shape', type=int, nargs=4, metavar=('N', 'C', 'H', 'W'),
                        help='input; default 1 3 800 1280 with a detector config, else '
                             '2 3 512 512')
    parser.add_argument('--modes', nargs='+', choices=['infer', 'train'],
                        default=['infer', 'train'])
    parser.add_argument('--dtypes', nargs='+', choices=['fp32', 'bf16', 'fp16'],
                        help='default: fp32, and bf16 where it is native; fp16 runs on a GPU '
                             'only')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--compile', action='store_true', help='torch.compile every subject')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory probes')
    parser.add_argument('--json', help='write the rows and the machine to this JSON file')
    parser.add_argument('--markdown', help='write the markdown table to this file')
    parser.add_argument('--plot', help='throughput against MACs, to this PNG')
    return parser.parse_args()


def machine(device: str) -> str:
    if device == 'cuda':
        return torch.cuda.get_device_name()
    return f'{cpu_support.describe()}, {torch.get_num_threads()} threads'


def plot(rows: list[dict], shape: list[int], path: str, title: str) -> None:
    """Inference throughput (fp32) against MACs of each subject at this input."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from mmengine.analysis import get_model_complexity_info

    from mambaout_mm.complexity import model_complexity

    points = [r for r in rows if r['mode'] == 'infer' and r['dtype'] == 'fp32']
    models = build_subjects([r['subject'] for r in points if not is_config(r['subject'])])
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in points:
        if is_config(r['subject']):
            macs = shape[0] * model_complexity(r['subject'], tuple(shape[2:]))['macs_g']
        else:
            model = models[r['subject']]
            model.eval()  # not chained: mmdet's ResNet.train() returns None
            with torch.no_grad():
                macs = get_model_complexity_info(model, inputs=torch.randn(*shape),
                                                 show_table=False, show_arch=False)['flops'] / 1e9
        ax.scatter(macs, r['images_per_s'])
        ax.annotate(r['subject'], (macs, r['images_per_s']), textcoords='offset points',
                    xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f'MACs (G) at {shape[2]}x{shape[3]}, batch {shape[0]}')
    ax.set_ylabel('images / s (fp32 inference)')
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    args = parse_args()
    args.shape = args.shape or default_shape(args.subjects)
    args.dtypes = args.dtypes or default_dtypes(args.device)
    if {'mambaout_t', 'timm_mambaout_t'} <= set(args.subjects):
        models = build_subjects(['mambaout_t', 'timm_mambaout_t'])
        diff = feature_agreement(models['mambaout_t'], models['timm_mambaout_t'],
                                 torch.randn(*args.shape))
        print(f'timm_mambaout_t has our weights: stage features differ by at most {diff:.1e}')
    results = run_benchmark(args.subjects, args.shape, args.modes, args.dtypes, args.device,
                            args.warmup, args.repeats, args.compile, not args.no_memory)
    rows = to_rows(results, args.shape[0])
    table = markdown(rows, args.subjects[0])
    header = (f'{machine(args.device)}; input {"x".join(map(str, args.shape))}; {args.repeats} interleaved '
              f'runs after {args.warmup} warm-up; torch {torch.__version__}'
              f'{"; torch.compile" if args.compile else ""}')
    if args.device == 'cpu' and 'bf16' in args.dtypes and not cpu_support.bf16_native():
        header += f'; bf16 emulated ({cpu_support.why_no_native_bf16()})'
    print(header + '\n\n' + table)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(header + '\n\n' + table + '\n')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(machine=machine(args.device), shape=args.shape, rows=rows), f, indent=2)
    if args.plot:
        plot(rows, args.shape, args.plot, machine(args.device))


if __name__ == '__main__':
    main()
