"""What this machine's CPU computes natively, decided once per process.

Two facts steer the project's CPU paths: the vector ISA that ATen and oneDNN use (AVX-512 or AVX2;
both honour the limits ``ATEN_CPU_CAPABILITY`` and ``ONEDNN_MAX_CPU_ISA``, which emulate a smaller
CPU on a bigger one), and whether bfloat16 is native (AVX512-BF16 or AMX). Without native bfloat16,
oneDNN either refuses bfloat16 primitives (AVX2) or emulates them, and CPU autocast runs many times
slower than float32; so ``--amp`` trains in float32 there
(:func:`mambaout_mm.engine.amp.setup_amp`).
"""
from __future__ import annotations

import functools
import os
import platform

import torch

#: oneDNN ISA limits (``ONEDNN_MAX_CPU_ISA``) that leave bfloat16 instructions available.
_ONEDNN_BF16_MARKERS = ('BF16', 'AMX', 'FP16', 'AVX10', 'ALL', 'DEFAULT')
#: oneDNN ISA limits that leave AVX-512 available
_ONEDNN_AVX512_MARKERS = ('AVX512', 'AMX', 'AVX10', 'ALL', 'DEFAULT')


def _cpuinfo(field: str) -> str | None:
    """The first ``field`` of /proc/cpuinfo (``'flags'``, ``'model name'``), if there is one."""
    try:
        with open('/proc/cpuinfo') as f:
            return next((value.strip() for key, _, value in (line.partition(':') for line in f)
                         if key.strip() == field), None)
    except OSError:
        return None


@functools.cache
def hardware_bf16() -> bool:
    """Whether the processor has bfloat16 instructions (AVX512-BF16 or AMX-BF16)."""
    check = getattr(torch.cpu, '_is_avx512_bf16_supported', None)  # torch >= 2.3
    if check is not None and check():
        return True
    return bool({'avx512_bf16', 'amx_bf16'} & set((_cpuinfo('flags') or '').split()))


def isa() -> str:
    """The vector ISA ATen dispatches to here (``'AVX512'``, ``'AVX2'``, ``'DEFAULT'``...)."""
    return torch.backends.cpu.get_cpu_capability()


def _onednn_limit() -> str:
    """oneDNN's ISA limit (``ONEDNN_MAX_CPU_ISA``, formerly ``DNNL_MAX_CPU_ISA``), or ''."""
    return os.environ.get('ONEDNN_MAX_CPU_ISA', os.environ.get('DNNL_MAX_CPU_ISA', ''))


def _onednn_allows(markers: tuple[str, ...]) -> bool:
    """Whether oneDNN's ISA limit, if one is set, names an ISA with one of ``markers``."""
    limit = _onednn_limit().upper()
    return not limit or any(m in limit for m in markers)


def onednn_avx512() -> bool:
    """Whether oneDNN runs AVX-512 code here: ATen sees AVX-512 and no oneDNN limit is lower."""
    return isa().startswith('AVX512') and _onednn_allows(_ONEDNN_AVX512_MARKERS)


def bf16_limited_away() -> str | None:
    """The environment variable that keeps bfloat16 instructions from oneDNN/ATen, if any."""
    if not _onednn_allows(_ONEDNN_BF16_MARKERS):
        return f'ONEDNN_MAX_CPU_ISA={_onednn_limit()}'
    if not isa().startswith('AVX512'):
        aten = os.environ.get('ATEN_CPU_CAPABILITY')
        return f'ATEN_CPU_CAPABILITY={aten}' if aten else None
    return None


@functools.cache
def bf16_native() -> bool:
    """Whether bfloat16 runs natively: the instructions exist and no ISA limit hides them."""
    return (hardware_bf16() and bf16_limited_away() is None and isa().startswith('AVX512')
            and torch.backends.mkldnn.is_available())


def why_no_native_bf16() -> str:
    """The reason :func:`bf16_native` is False, for messages."""
    if not hardware_bf16():
        return f'this CPU ({isa()}) has no AVX512-BF16 or AMX instructions'
    limit = bf16_limited_away()
    if limit:
        return f'{limit} hides this CPU\'s bfloat16 instructions'
    return 'PyTorch was built without oneDNN' if not torch.backends.mkldnn.is_available() else \
        f'ATen runs {isa()} kernels here'


def processor_name() -> str:
    """The model name, with the x86 family and model that tell its generation where the name
    does not (a virtual machine's ``AMD EPYC``: family 25 model 1 is Zen 3, model 17 Zen 4)."""
    name = _cpuinfo('model name') or platform.processor() or platform.machine()
    family, model = _cpuinfo('cpu family'), _cpuinfo('model')
    return f'{name} (family {family}, model {model})' if family and model else name


def describe() -> str:
    """One line for logs and benchmark tables, e.g. ``AMD EPYC, AVX2, no native bf16``."""
    bf16 = 'native bf16' if bf16_native() else 'no native bf16'
    limit = bf16_limited_away() or ''
    limited = f' (limited by {limit})' if limit and hardware_bf16() else ''
    return f'{processor_name()}, {isa()}, {bf16}{limited}'
