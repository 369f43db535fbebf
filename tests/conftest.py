"""Shared fixtures: random-weight stand-ins for the official and timm MambaOut checkpoints."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mambaout_mm import MambaOut


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter (norms and biases too) random values, so loads are observable."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05 + (1.0 if p.ndim == 1 else 0.0))
    return module


@pytest.fixture(scope='session')
def official_femto(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """An official-layout femto checkpoint (plain state_dict, as released), random weights."""
    state_dict = randomize_(MambaOut('femto')).state_dict()
    path = tmp_path_factory.mktemp('ckpt') / 'mambaout_femto.pth'
    torch.save(state_dict, path)
    return path, state_dict
