"""Side-by-side speed and memory of MambaOut and reference backbones, or of whole models.

A subject is a backbone from ``SUBJECTS`` or a detector/segmentor config (``*.py``, also
``mmdet::``/``mmseg::`` paths), which runs on synthetic annotated images. Every subject gets the
same input; timed runs are interleaved (one run of each subject per round) so that machine noise
hits all of them alike; the report gives medians, spread and ratios to the
first subject. Peak memory is measured in a fresh process per subject: CPU resident set growth
during one step (glibc told to return freed blocks, so RSS follows live memory), or CUDA peak
allocated memory.
"""
from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from . import compat, cpu_support
from .errors import ConfigError

#: autocast dtype of each precision; 'fp32' is strict float32 (no TF32 on a GPU), 'tf32' float32
#: with TF32 matrix products and convolutions (Ampere and later GPUs)
DTYPES = {'fp32': torch.float32, 'tf32': torch.float32, 'bf16': torch.bfloat16,
          'fp16': torch.float16}
#: MambaOut sizes by the letter of their subject names
SIZES = {'t': 'tiny', 's': 'small', 'b': 'base'}


class TimmFeatures(nn.Module):
    """A timm model returning its four stage outputs (NCHW), head pruned."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        model.prune_intermediate_layers(4, prune_norm=True, prune_head=True)
        self.model = model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, intermediates_only=True)


def timm_mambaout(arch: str, like: nn.Module | None = None) -> nn.Module:
    """timm's MambaOut as a feature extractor, with the trunk weights of ``like`` if given."""
    import timm
    from timm.models.mambaout import checkpoint_filter_fn
    model = timm.create_model(f'mambaout_{arch}')
    if like is not None:
        trunk = {k: v for k, v in like.state_dict().items()
                 if k.startswith(('downsample_layers.', 'stages.'))}
        missing, unexpected = model.load_state_dict(checkpoint_filter_fn(trunk, model),
                                                    strict=False)
        assert not unexpected and all(k.startswith('head.') for k in missing), (missing,
                                                                                 unexpected)
    return TimmFeatures(model)


def mambaout_backbone(arch: str, **kwargs) -> nn.Module:
    from .backbone import MambaOutBackbone
    return MambaOutBackbone(arch, **kwargs)


class OnnxRuntimeModule(nn.Module):
    """A network exported to ONNX (``onnx_export``) and run by ONNX Runtime on the CPU, with its
    default threads; inference in fp32 only. Free sizes unless ``shape`` fixes them (UperNet's
    pooling holds for the traced size only)."""

    trains = False

    def __init__(self, model: nn.Module, shape: list[int] | None = None) -> None:
        super().__init__()
        import tempfile

        import onnxruntime as ort

        from .onnx_export import export
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, 'network.onnx')
            export(model, tuple(shape or (2, 3, 64, 64)), path, dynamic=shape is None)
            self.session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])

    def forward(self, x: torch.Tensor) -> list:
        if x.device.type != 'cpu':
            raise ValueError('ONNX Runtime subjects run on the CPU only.')
        return self.session.run(None, {'image': x.numpy()})


def _swin_t() -> nn.Module:
    from mmdet.models.backbones import SwinTransformer
    return SwinTransformer(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                           window_size=7, drop_path_rate=0.0)


def _resnet50() -> nn.Module:
    from mmdet.models.backbones import ResNet
    return ResNet(depth=50, out_indices=(0, 1, 2, 3))


def _convnext_t() -> nn.Module:
    import timm
    return TimmFeatures(timm.create_model('convnext_tiny'))


#: name -> builder; ``timm_mambaout_*`` and ``*_onnxruntime`` subjects copy the weights of the
#: matching ours.
SUBJECTS: dict[str, Callable[[], nn.Module]] = {
    'mambaout_t': lambda: mambaout_backbone('tiny'),
    'mambaout_s': lambda: mambaout_backbone('small'),
    'mambaout_b': lambda: mambaout_backbone('base'),
    'mambaout_t_cp': lambda: mambaout_backbone('tiny', with_cp=True),
    # the block's plain formula
    'mambaout_t_ref': lambda: mambaout_backbone('tiny', mixer='reference'),
    'mambaout_t_compiled': lambda: torch.compile(mambaout_backbone('tiny')),
    'mambaout_t_onnxruntime': lambda: OnnxRuntimeModule(mambaout_backbone('tiny')),
    'timm_mambaout_t': lambda: timm_mambaout('tiny'),
    'timm_mambaout_s': lambda: timm_mambaout('small'),
    'timm_mambaout_b': lambda: timm_mambaout('base'),
    'convnext_t': _convnext_t,
    'swin_t': _swin_t,
    'resnet50': _resnet50,
}


#: input of each kind of subject when none is given (the paper's sizes; UperNet's pooling module
#: needs two images per training batch on a CPU)
DEFAULT_SHAPES = {'backbone': [2, 3, 512, 512], 'mmdet': [1, 3, 800, 1280],
                  'mmseg': [2, 3, 512, 512]}


#: ``CONFIG.py`` runs the model as mmengine does (``predict``; ``loss`` and an update);
#: ``CONFIG.py:network`` the network ONNX export takes (``onnx_export.network``: a segmentor's
#: logits, a detector's dense maps) in PyTorch, ``CONFIG.py:onnxruntime`` that network in ONNX
#: Runtime, exported at the benchmark's input size; both inference only
CONFIG_RUNTIMES = ('network', 'onnxruntime')


def split_config(name: str) -> tuple[str, str | None]:
    """``(config, runtime)`` of a subject name; runtime ``None`` for the model as mmengine runs it."""
    head, sep, tail = name.rpartition(':')
    return (head, tail) if sep and tail in CONFIG_RUNTIMES and head.endswith('.py') else (name, None)


def is_config(name: str) -> bool:
    return split_config(name)[0].endswith('.py')


class Network(nn.Module):
    """The exportable network of a config's model (``onnx_export.network``), inference only."""

    trains = False

    def __init__(self, config: str) -> None:
        super().__init__()
        from .onnx_export import network
        self.network = network(ConfigModel(config).model, 'model').eval()

    def forward(self, x: torch.Tensor):
        return self.network(x)


class ConfigModel(nn.Module):
    """The detector or segmentor a config builds, fed synthetic annotated images."""

    def __init__(self, config: str) -> None:
        super().__init__()
        from .config import build_model, load_config, toolbox
        cfg = load_config(config)
        self.scope = toolbox(cfg)
        self.model = build_model(cfg)
        # the task's classes (the RPN has one, the box, mask and decode heads have all)
        self.num_classes = max(m.num_classes for m in self.model.modules()
                               if isinstance(getattr(m, 'num_classes', None), int))

    def to(self, *args, **kwargs) -> ConfigModel:
        """Through mmengine's ``BaseModel.to``, which also tells the data preprocessor its device
        (``nn.Module.to`` moves the tensors alone)."""
        self.model.to(*args, **kwargs)
        return self

    def batch(self, shape: list[int], training: bool) -> dict:
        """Seeded random images with boxes and masks (detection) or label maps, preprocessed."""
        n, c, h, w = shape
        if self.scope == 'mmdet':
            from mmdet.testing import demo_mm_inputs
            data = demo_mm_inputs(n, (c, h, w), num_items=[8] * n,
                                  num_classes=self.num_classes, with_mask=True)
        else:
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            gen = torch.Generator().manual_seed(0)
            data = dict(inputs=[], data_samples=[])
            for _ in range(n):
                data['inputs'].append(torch.randint(0, 256, (c, h, w), dtype=torch.uint8,
                                                    generator=gen))
                sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
                sample.gt_sem_seg = PixelData(
                    data=torch.randint(0, self.num_classes, (1, h, w), generator=gen))
                data['data_samples'].append(sample)
        device = next(self.model.parameters()).device
        data['inputs'] = [x.to(device) for x in data['inputs']]
        return self.model.data_preprocessor(data, training)

    def autocast(self, device: str, dtype: str):
        """Mixed precision as training uses it: on a CPU bf16 only where mmcv's ops allow."""
        if device == 'cpu' and dtype != 'fp32':
            from .amp import AUTOCAST_MODULES, autocast_submodules
            return autocast_submodules(self.model, AUTOCAST_MODULES[self.scope], DTYPES[dtype])
        return autocast(device, dtype)


def build_subjects(names: list[str], shape: list[int] | None = None) -> dict[str, nn.Module]:
    """Build the named subjects; timm's MambaOut gets the weights of our MambaOut of that size,
    a config's ONNX Runtime subject is exported at ``shape``."""
    unknown = [n for n in names if n not in SUBJECTS and not is_config(n)]
    if unknown:
        raise ConfigError(f'Unknown benchmark subjects {unknown}; choose from {sorted(SUBJECTS)} '
                       f'or give config files (*.py, or *.py:RUNTIME for {CONFIG_RUNTIMES}).')
    torch.manual_seed(0)
    models = {}
    for name in names:
        config, runtime = split_config(name)
        if runtime == 'onnxruntime':
            if shape is None:
                raise ValueError(f'{name} is exported at the input size: give a shape.')
            pytorch = models.get(f'{config}:network')  # the same weights where it is a subject
            models[name] = OnnxRuntimeModule(pytorch if pytorch is not None else Network(config),
                                             shape)
        elif runtime == 'network':
            models[name] = Network(config)
        elif is_config(name):
            models[name] = ConfigModel(name)
        elif name.startswith('timm_mambaout_'):
            ours = models.get(name[len('timm_'):]) or SUBJECTS[name[len('timm_'):]]()
            models[name] = timm_mambaout(SIZES[name.rsplit('_', 1)[1]], like=ours)
        elif name.endswith('_onnxruntime'):
            ours = models.get(name[:-len('_onnxruntime')])
            models[name] = OnnxRuntimeModule(ours) if ours is not None else SUBJECTS[name]()
        else:
            models[name] = SUBJECTS[name]()
    return models


def feature_agreement(ours: nn.Module, timm_features: TimmFeatures, x: torch.Tensor) -> float:
    """Largest absolute difference between the stage features (before our output norms)."""
    with torch.inference_mode():
        a = ours.eval().forward_features(x)
        b = timm_features.eval().model.forward_intermediates(x, intermediates_only=True,
                                                             output_fmt='NHWC')
    return max((u - v).abs().max().item() for u, v in zip(a, b))


def default_dtypes(device: str) -> list[str]:
    """fp32, and bf16 where the device computes it natively (emulated bf16 is no benchmark);
    on a GPU also TF32 and fp16 (the paper's training precision)."""
    if device == 'cuda':
        return ['fp32', 'tf32', 'fp16'] + (['bf16'] if torch.cuda.is_bf16_supported() else [])
    return ['fp32', 'bf16'] if cpu_support.bf16_native() else ['fp32']


@contextlib.contextmanager
def autocast(device: str, dtype: str):
    """Autocast to ``dtype``; on a GPU also TF32 on for 'tf32' only (torch's default lets cuDNN
    use TF32 in float32 convolutions: 'fp32' turns that off)."""
    if device != 'cuda' and dtype == 'tf32':
        raise ValueError('tf32 is a GPU precision; use fp32 on a CPU.')
    if device == 'cuda':
        flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = dtype == 'tf32'
    try:
        if dtype in ('fp32', 'tf32'):
            yield
        else:
            with torch.autocast(device_type=device, dtype=DTYPES[dtype]):
                yield
    finally:
        if device == 'cuda':
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def default_shape(names: list[str]) -> list[int]:
    """The detection size if a detector is among the subjects, else the segmentation crops."""
    from .config import load_config, toolbox
    scopes = {toolbox(load_config(split_config(n)[0])) if is_config(n) else 'backbone'
              for n in names}
    return DEFAULT_SHAPES['mmdet' if 'mmdet' in scopes else 'mmseg' if 'mmseg' in scopes
                          else 'backbone']


def make_step(model: nn.Module, x: torch.Tensor, mode: str, dtype: str) -> Callable[[], None]:
    """One inference forward, or one training step (forward, backward, AdamW update)."""
    device = x.device.type
    if isinstance(model, ConfigModel):
        return make_model_step(model, list(x.shape), device, mode, dtype)
    if mode == 'infer':
        model.eval()

        def step() -> None:
            with torch.inference_mode(), autocast(device, dtype):
                model(x)
        return step

    model.train()

    def loss() -> torch.Tensor:
        with autocast(device, dtype):
            return sum(out.float().square().mean() for out in model(x))
    return training_step(model, loss, device, dtype)


def training_step(model: nn.Module, loss: Callable[[], torch.Tensor], device: str,
                  dtype: str) -> Callable[[], None]:
    """Backward of ``loss()`` (loss-scaled for fp16) and an AdamW update of ``model``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = compat.grad_scaler(device, enabled=dtype == 'fp16')

    def step() -> None:
        with autocast(device, 'tf32' if dtype == 'tf32' else 'fp32'):  # the backward's TF32
            scaler.scale(loss()).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
    return step


def make_model_step(model: ConfigModel, shape: list[int], device: str, mode: str,
                    dtype: str) -> Callable[[], None]:
    """``predict`` on a batch, or a training step: ``loss``, backward, AdamW update."""
    data = model.batch(shape, training=mode == 'train')
    net = model.model
    if mode == 'infer':
        net.eval()

        def step() -> None:
            with torch.inference_mode(), model.autocast(device, dtype):
                net(**data, mode='predict')
        return step

    net.train()

    def loss() -> torch.Tensor:
        with model.autocast(device, dtype):
            return net.parse_losses(net(**data, mode='loss'))[0]
    return training_step(net, loss, device, dtype)


def _sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


@dataclass
class Timing:
    name: str
    mode: str
    dtype: str
    times_s: list[float] = field(default_factory=list)
    peak_mem_mb: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times_s)

    @property
    def spread(self) -> float:
        """Half the interquartile range, relative to the median."""
        if len(self.times_s) < 4:
            return (max(self.times_s) - min(self.times_s)) / 2 / self.median
        q = statistics.quantiles(self.times_s, n=4)
        return (q[2] - q[0]) / 2 / self.median


def time_interleaved(steps: dict[str, Callable[[], None]], device: str, warmup: int,
                     repeats: int) -> dict[str, list[float]]:
    """Warm every step up, then time ``repeats`` rounds of one run of each step, in turn."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def _vm_kb(field_name: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field_name + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field_name} not in /proc/self/status')


def cuda_peak_memory(step: Callable[[], None]) -> float:
    """Peak CUDA memory (MB) that one more run of a warmed-up ``step`` allocates beyond what is
    held before it (the caching allocator's statistics are exact, so no fresh process is
    needed)."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2 ** 20


def peak_memory_here(name: str, mode: str, dtype: str, shape: list[int], device: str) -> float:
    """Peak memory (MB) of one step of ``name``, measured in this process after a warm-up."""
    model = build_subjects([name], shape)[name].to(device)
    x = torch.randn(*shape, device=device)
    step = make_step(model, x, mode, dtype)
    step()
    if device == 'cuda':
        return cuda_peak_memory(step)
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset the peak resident set size (VmHWM)
    base = _vm_kb('VmRSS')
    step()
    return (_vm_kb('VmHWM') - base) / 1024


def peak_memory(name: str, mode: str, dtype: str, shape: list[int], device: str) -> float:
    """:func:`peak_memory_here` in a fresh process (so subjects do not share allocator state)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', PYTHONWARNINGS='ignore')
    args = json.dumps(dict(name=name, mode=mode, dtype=dtype, shape=shape, device=device))
    proc = subprocess.run([sys.executable, '-m', 'mambaout_mm.benchmark', args], env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f'memory probe for {name} failed:\n{proc.stderr[-3000:]}')
    return float(proc.stdout.strip().splitlines()[-1])


def run_benchmark(names: list[str], shape: list[int], modes: list[str], dtypes: list[str],
                  device: str = 'cpu', warmup: int = 2, repeats: int = 5,
                  compile: bool = False, memory: bool = True, channels_last: bool = False,
                  profile: Callable[[str, str, str, Callable[[], None]], None] | None = None
                  ) -> list[Timing]:
    """Time every subject in every mode and dtype; optionally measure peak memory (in a fresh
    process per subject on a CPU, in this one on a GPU) and hand each warmed-up step to
    ``profile(name, mode, dtype, step)``."""
    gpu_only = {'fp16', 'tf32'} & set(dtypes) if device != 'cuda' else set()
    if gpu_only:
        raise ValueError(f'{sorted(gpu_only)} run on a GPU only (fp16 needs a loss scale and is '
                         'slow on CPUs; TF32 is a GPU format); use fp32 or bf16 on a CPU.')
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    models = {name: m.to(device, memory_format=fmt)
              for name, m in build_subjects(names, shape).items()}
    if compile:
        models = {name: torch.compile(m) for name, m in models.items()}
    x = torch.randn(*shape, device=device).contiguous(memory_format=fmt)
    results, profiled = [], []
    for mode in modes:
        for dtype in dtypes:
            steps = {name: make_step(m, x, mode, dtype) for name, m in models.items()
                     if getattr(m, 'trains', True) or (mode, dtype) == ('infer', 'fp32')}
            times = time_interleaved(steps, device, warmup, repeats)
            for name, step in steps.items():
                timing = Timing(name, mode, dtype, times[name])
                if memory and device == 'cuda':
                    timing.peak_mem_mb = cuda_peak_memory(step)
                elif memory and not compile:
                    timing.peak_mem_mb = peak_memory(name, mode, dtype, shape, device)
                results.append(timing)
                if profile is not None:
                    profiled.append((name, mode, dtype, step))
    for args in profiled:  # after all timing: a profiler slows the kernel launches after it
        profile(*args)
    return results


def to_rows(results: list[Timing], batch: int) -> list[dict]:
    """Rows with medians, spread, throughput and the ratio to the first subject of each group."""
    rows = []
    for r in results:
        first = next(o for o in results if o.mode == r.mode and o.dtype == r.dtype)
        fp32 = next((o for o in results if o.name == r.name and o.mode == r.mode
                     and o.dtype == 'fp32'), None)
        rows.append(dict(
            subject=r.name, mode=r.mode, dtype=r.dtype, median_s=round(r.median, 4),
            spread=round(r.spread, 3), images_per_s=round(batch / r.median, 3),
            speedup_of_first=round(r.median / first.median, 3),
            speedup_vs_fp32=round(fp32.median / r.median, 3) if fp32 else None,
            peak_mem_mb=None if r.peak_mem_mb is None else round(r.peak_mem_mb, 1),
            repeats=len(r.times_s)))
    return rows


def markdown(rows: list[dict], first: str) -> str:
    lines = [f'| subject | mode | dtype | median (s) | ± | img/s | {first} speed-up | '
             'vs fp32 | peak mem (MB) |', '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        mem = '-' if r['peak_mem_mb'] is None else f"{r['peak_mem_mb']:.0f}"
        vs32 = '-' if r['speedup_vs_fp32'] is None else f"{r['speedup_vs_fp32']:.2f}x"
        lines.append(f"| {r['subject']} | {r['mode']} | {r['dtype']} | {r['median_s']:.3f} | "
                     f"{100 * r['spread']:.0f}% | {r['images_per_s']:.2f} | "
                     f"{r['speedup_of_first']:.2f}x | {vs32} | {mem} |")
    return '\n'.join(lines)


if __name__ == '__main__':  # memory probe, see peak_memory()
    spec = json.loads(sys.argv[1])
    print(peak_memory_here(**spec))
