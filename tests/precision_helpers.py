"""What the FP16/bf16 tests on the GPU (test_gpu.py) and on the CPU (test_fp16_numerics.py)
share."""
from __future__ import annotations

import pytest
import torch

#: Largest relative (L2) error of the backbone's features under autocast, against strict fp32.
TOLERANCE = {torch.float16: 5e-3, torch.bfloat16: 4e-2}
#: The larger variants: minutes each, so marked slow.
HEAVY = [pytest.param(arch, marks=pytest.mark.slow) for arch in ('small', 'base')]


def relative_errors(outs, refs) -> list[float]:
    return [((o.float() - r).norm() / r.norm()).item() for o, r in zip(outs, refs)]
