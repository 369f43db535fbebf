"""Peak memory of one step: CUDA's allocator statistics, or on a CPU the resident set growth in a
fresh process per subject (glibc told to return freed blocks, so RSS follows live memory)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Callable

import torch

from .steps import make_step
from .subjects import build_subjects


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
    proc = subprocess.run([sys.executable, '-m', __name__, args], env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f'memory probe for {name} failed:\n{proc.stderr[-3000:]}')
    return float(proc.stdout.strip().splitlines()[-1])


if __name__ == '__main__':  # the probe's process, see peak_memory()
    print(peak_memory_here(**json.loads(sys.argv[1])))
