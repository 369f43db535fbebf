"""One timed step of a subject: an inference forward, or a training step with an AdamW update."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..utils import compat
from .precision import autocast
from .synthetic import ConfigModel


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
