"""Every subject in every mode and precision, timed side by side, with its peak memory."""
from __future__ import annotations

from typing import Callable

import torch

from .memory import cuda_peak_memory, peak_memory
from .steps import make_step
from .subjects import build_subjects
from .timing import Timing, time_interleaved


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
