"""Speed and memory of our MambaOut backbone beside timm's MambaOut, ConvNeXt-T, Swin-T, ResNet-50.

    python tools/benchmark.py [--subjects mambaout_t timm_mambaout_t ...] [--shape N C H W]
        [--modes infer train] [--dtypes fp32 tf32 fp16 bf16] [--repeats 5] [--compile]
        [--channels-last] [--json FILE] [--markdown FILE] [--plot FILE.png] [--profile FILE]
    python tools/benchmark.py --subjects configs/mask_rcnn/mambaout_tiny_1x.py \
        mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py ...

Same input for all, interleaved runs, median and spread, ratios to the first subject; peak memory
per subject in a fresh process. Subjects are backbones or configs (whole detectors/segmentors on
synthetic annotated images). Default input: 2x3x512x512 (segmentation crops) for backbones and
segmentors, 1x3x800x1280 when a detector is among the subjects; fp32, and bf16 where the GPU or
the CPU computes it natively (bf16 asked for on another CPU runs emulated, and the header says so);
on a GPU also fp16 and tf32 ('fp32' there is strict float32: TF32 off for cuDNN too). The header
names the machine (CPU and ISA, or GPU, driver, CUDA and cuDNN), torch, memory format and compile.
``NAME_BACKEND`` (``mambaout_t_onnxruntime``, ``mambaout_t_openvino``): that backbone (same weights)
exported to ONNX and run by a backend of the deployment package on the CPU; ``CONFIG.py:BACKEND``
a config's network the same way; both are timed for fp32 inference only.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import textwrap

import torch

from mambaout_mm.benchmark.precision import default_dtypes
from mambaout_mm.benchmark.run import run_benchmark
from mambaout_mm.benchmark.subjects import (
    SUBJECTS,
    build_subjects,
    default_shape,
    deploy_backends,
    feature_agreement,
)
from mambaout_mm.benchmark.tables import markdown, to_rows
from mambaout_mm.models import cpu_kernels
from mambaout_mm.utils import cli, cpu_support
from mambaout_mm.utils.errors import ConfigError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--subjects', nargs='+', metavar='SUBJECT',
                        default=['mambaout_t', 'timm_mambaout_t', 'convnext_t', 'swin_t',
                                 'resnet50'],
                        help=f'backbones ({", ".join(sorted(SUBJECTS))}; NAME_BACKEND: exported '
                             f'and run by a deployment backend, {", ".join(deploy_backends())}) '
                             f'or config files: CONFIG.py (the model as mmengine runs it), '
                             f'CONFIG.py:network (the network ONNX export takes, in PyTorch), '
                             f'CONFIG.py:BACKEND (that network run by a deployment backend)')
    parser.add_argument('--shape', type=int, nargs=4, metavar=('N', 'C', 'H', 'W'),
                        help='input; default 1 3 800 1280 with a detector config, else '
                             '2 3 512 512')
    parser.add_argument('--modes', nargs='+', choices=['infer', 'train'],
                        default=['infer', 'train'])
    parser.add_argument('--dtypes', nargs='+', choices=['fp32', 'tf32', 'fp16', 'bf16'],
                        help='default: fp32, and bf16 where it is native; on a GPU also tf32 '
                             'and fp16 (GPU only)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--compile', action='store_true', help='torch.compile every subject')
    parser.add_argument('--channels-last', action='store_true',
                        help='models and input in channels-last memory format')
    parser.add_argument('--profile', help='write the 15 costliest kernels of each timed step '
                                          '(torch.profiler) to this text file')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory probes')
    parser.add_argument('--floor', action='store_true',
                        help='on a CPU: each fp32 inference time over its floor (the MACs at '
                             'this input over the GEMM rate measured here)')
    parser.add_argument('--json', help='write the rows and the machine to this JSON file')
    parser.add_argument('--markdown', help='write the markdown table to this file')
    parser.add_argument('--plot', help='throughput against MACs, to this PNG')
    return cli.add_debug_flag(parser).parse_args()


def machine(device: str) -> str:
    if device == 'cuda':
        query = ['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader']
        driver = subprocess.run(query, capture_output=True, text=True,
                                check=False).stdout.split('\n')[0]
        return (f'{torch.cuda.get_device_name()}, driver {driver or "unknown"}, CUDA '
                f'{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}')
    return (f'{cpu_support.describe()}, {torch.get_num_threads()} threads, '
            f'{cpu_kernels.isa_kernels().name} GEMMs in our CPU kernels')


class Profiler:
    """Collects the costliest kernels of one run of each warmed-up step into a text report."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.sections: list[str] = []

    def __call__(self, name: str, mode: str, dtype: str, step) -> None:
        from torch.profiler import ProfilerActivity, profile
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                               if self.device == 'cuda' else [])
        with profile(activities=activities) as prof:
            step()
            if self.device == 'cuda':
                torch.cuda.synchronize()
        from torch.autograd.profiler_util import FunctionEventAvg
        key = 'self_cpu_time_total' if self.device != 'cuda' else (
            'self_device_time_total' if hasattr(FunctionEventAvg(), 'self_device_time_total')
            else 'self_cuda_time_total')  # torch < 2.4
        table = prof.key_averages().table(sort_by=key, row_limit=15, max_name_column_width=60)
        self.sections.append(f'## {name} {mode} {dtype}\n{table}')

    def write(self, path: str, header: str) -> None:
        with open(path, 'w') as f:
            f.write(header + '\n\n' + '\n\n'.join(self.sections) + '\n')


def plot(rows: list[dict], shape: list[int], path: str, title: str) -> None:
    """Inference throughput (fp32) against MACs of each subject at this input."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mambaout_mm.benchmark.floor import subject_macs

    points = [r for r in rows if r['mode'] == 'infer' and r['dtype'] == 'fp32']
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, r in enumerate(points):
        macs = r['macs_g'] if 'macs_g' in r else subject_macs(r['subject'], shape)  # --floor's
        ax.scatter(macs, r['images_per_s'])
        ax.annotate(r['subject'], (macs, r['images_per_s']), textcoords='offset points',
                    xytext=(4, 4 if i % 2 else -10), fontsize=8)  # apart where points meet
    ax.set_xlabel(f'MACs (G) at {shape[2]}x{shape[3]}, batch {shape[0]}')
    ax.set_ylabel('images / s (fp32 inference)')
    ax.set_title('\n'.join(textwrap.wrap(title, 100)), fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def add_floor(rows: list[dict], shape: list[int]) -> str:
    """Each fp32 inference row's time over its floor (``x_floor``); the header's words."""
    from mambaout_mm.benchmark.floor import floor_seconds, gemm_gflops, subject_macs
    gflops = gemm_gflops(torch.get_num_threads())
    for r in rows:
        if (r['mode'], r['dtype']) == ('infer', 'fp32'):
            r['macs_g'] = round(subject_macs(r['subject'], shape), 3)
            r['x_floor'] = round(r['median_s'] / floor_seconds(r['macs_g'], gflops), 2)
    return f'; fp32 GEMM {gflops:.0f} GFLOP/s'


def main() -> None:
    args = parse_args()
    if args.floor and args.device != 'cpu':
        raise ConfigError('--floor measures the fp32 GEMM rate of this CPU; on a GPU leave it '
                          'out, or hide the GPU (CUDA_VISIBLE_DEVICES=) to time the CPU.')
    args.shape = args.shape or default_shape(args.subjects)
    args.dtypes = args.dtypes or default_dtypes(args.device)
    if {'mambaout_t', 'timm_mambaout_t'} <= set(args.subjects):
        models = build_subjects(['mambaout_t', 'timm_mambaout_t'])
        diff = feature_agreement(models['mambaout_t'], models['timm_mambaout_t'],
                                 torch.randn(*args.shape))
        print(f'timm_mambaout_t has our weights: stage features differ by at most {diff:.1e}')
    profiler = Profiler(args.device) if args.profile else None
    results = run_benchmark(args.subjects, args.shape, args.modes, args.dtypes, args.device,
                            args.warmup, args.repeats, args.compile, not args.no_memory,
                            args.channels_last, profiler)
    rows = to_rows(results, args.shape[0])
    header = (f'{machine(args.device)}; input {"x".join(map(str, args.shape))}; '
              f'{args.repeats} interleaved runs after {args.warmup} warm-up; torch '
              f'{torch.__version__}; {"channels-last" if args.channels_last else "contiguous"} '
              f'memory format; {"torch.compile" if args.compile else "eager"}')
    if args.floor:
        header += add_floor(rows, args.shape)
    table = markdown(rows, args.subjects[0])
    if args.device == 'cpu' and 'bf16' in args.dtypes and not cpu_support.bf16_native():
        header += f'; bf16 emulated ({cpu_support.why_no_native_bf16()})'
    print(header + '\n\n' + table)
    if profiler is not None:
        profiler.write(args.profile, header)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(header + '\n\n' + table + '\n')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(machine=machine(args.device), shape=args.shape, rows=rows), f, indent=2)
    if args.plot:
        plot(rows, args.shape, args.plot, machine(args.device))


if __name__ == '__main__':
    cli.run(main)
