"""Stand-ins for trained weights, for tests and tools that cannot download the real ones."""
from __future__ import annotations

import torch


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter random values at the scale of a trained model (weights ~ N(0, .02),
    norm scales ~ 1, biases ~ 0, each perturbed), so that loads are observable and activations
    stay O(1) through the deepest variants."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * 0.02
            is_scale = p.ndim == 1 and (name.endswith('weight') or name.endswith('gamma'))
            p.copy_(noise + 1.0 if is_scale else noise)
    return module
