"""The few PyTorch APIs whose spelling changed between torch 2.1 and today, in one place."""
from __future__ import annotations

import torch


def cpu_autocast_dtype() -> torch.dtype | None:
    """The CPU autocast dtype if CPU autocast is on, else ``None``."""
    if hasattr(torch, 'get_autocast_dtype'):  # torch >= 2.4
        enabled = torch.is_autocast_enabled('cpu')
        return torch.get_autocast_dtype('cpu') if enabled else None
    return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None


def is_compiling() -> bool:
    """Whether ``torch.compile`` is tracing the caller."""
    compiler = getattr(torch, 'compiler', None)
    if compiler is not None and hasattr(compiler, 'is_compiling'):  # torch >= 2.3
        return compiler.is_compiling()
    import torch._dynamo as dynamo
    return dynamo.is_compiling()


def function_mode_active() -> bool:
    """Whether a ``TorchFunctionMode`` intercepts torch functions here (torch >= 2.0)."""
    return torch._C._is_torch_function_mode_enabled()


def grad_scaler(device: str, enabled: bool, init_scale: float = 2.0 ** 16):
    """A loss scaler for ``device`` (``torch.amp.GradScaler`` since torch 2.3)."""
    if hasattr(torch.amp, 'GradScaler'):
        return torch.amp.GradScaler(device, init_scale=init_scale, enabled=enabled)
    return torch.cuda.amp.GradScaler(init_scale=init_scale, enabled=enabled and device == 'cuda')
