"""The precisions the benchmark times, and the autocast that gives each."""
from __future__ import annotations

import contextlib

import torch

from ..utils import cpu_support

#: autocast dtype of each precision; 'fp32' is strict float32 (no TF32 on a GPU), 'tf32' float32
#: with TF32 matrix products and convolutions (Ampere and later GPUs)
DTYPES = {'fp32': torch.float32, 'tf32': torch.float32, 'bf16': torch.bfloat16,
          'fp16': torch.float16}


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
