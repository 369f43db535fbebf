"""The gated block's token mixer and the trunk's strided convs: their implementations, and the
one place that picks one.

Every implementation computes ``fc2(act(g) * cat(i, dwconv(c))) [+ shortcut]`` from a
:class:`~mambaout_mm.models.mambaout.GatedCNNBlock`'s parameters and its normed input ``y`` (NHWC),
and the stem's and downsampling layers' convs: same parameters, same function, other kernels.

* ``reference``: :meth:`GatedCNNBlock.mix_reference`, the formula in eager PyTorch, and the conv
  layers themselves. Any device and dtype; what tracing (FLOP counts, ONNX) and
  ``torch.compile`` see.
* ``cpu_kernels``: fused oneDNN GEMMs with a written-out backward, and convs on channels-last
  input whose weight gradient reads the layout fastest on this ISA (:mod:`.cpu_kernels`), on
  CPUs whose oneDNN runs the compute dtype, outside tracing and compilation.

On a GPU ``auto`` is the formula: it runs as fast as timm's MambaOut there, and neither a split
``fc1`` nor a per-block ``torch.compile`` beat it; compiling the whole backbone is what wins there
(the measurements: docs/gpu.md).

``auto`` (the default) takes the first of ``AUTO_ORDER`` that runs on the input. A block, a
backbone (``backend=...`` in a config) or the benchmark may name one instead; a named one that
cannot run on an input raises. A new implementation is two functions and one line in
``BACKENDS``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, NamedTuple

import torch
from torch import nn

from ..utils.errors import ConfigError
from . import cpu_kernels

if TYPE_CHECKING:
    from .mambaout import GatedCNNBlock


def reference(block: GatedCNNBlock, y: torch.Tensor,
              shortcut: torch.Tensor | None) -> torch.Tensor:
    out = block.mix_reference(y)
    return out if shortcut is None else out + shortcut


def cpu_kernels_mix(block: GatedCNNBlock, y: torch.Tensor,
                    shortcut: torch.Tensor | None) -> torch.Tensor:
    dtype = cpu_kernels.compute_dtype(y)
    weights = cpu_kernels.MixerWeights(
        *(t.to(dtype) for t in (block.fc1.weight, block.fc1.bias, block.conv.weight,
                                block.conv.bias, block.fc2.weight, block.fc2.bias)),
        hidden=block.split_indices[0], n_identity=block.split_indices[1], act=block.act_name)
    if shortcut is not None and shortcut.dtype != dtype:  # fc2's epilogue adds it in ``dtype``
        return cpu_kernels.gated_mix(y.to(dtype), None, weights) + shortcut
    return cpu_kernels.gated_mix(y.to(dtype), shortcut, weights)


class Backend(NamedTuple):
    mix: Callable[[GatedCNNBlock, torch.Tensor, torch.Tensor | None], torch.Tensor]
    conv: Callable[[nn.Conv2d, torch.Tensor], torch.Tensor]
    runs_on: Callable[[torch.Tensor], bool]


BACKENDS: dict[str, Backend] = {
    'reference': Backend(reference, nn.Conv2d.__call__, lambda y: True),
    'cpu_kernels': Backend(cpu_kernels_mix, cpu_kernels.conv, cpu_kernels.available),
}
#: what ``auto`` tries, first to last
AUTO_ORDER = ('cpu_kernels', 'reference')
CHOICES = ('auto', *BACKENDS)


def check_choice(choice: str) -> str:
    if choice not in CHOICES:
        raise ConfigError(f'Unknown MambaOut backend {choice!r}; choose one of {CHOICES}.')
    return choice


def select(choice: str, y: torch.Tensor) -> str:
    """The implementation that computes the mixer and convs on ``y``: ``choice``, or for
    ``'auto'`` the first of ``AUTO_ORDER`` that runs on ``y``'s device and dtype in the current
    tracing state."""
    if choice == 'auto':
        return next(name for name in AUTO_ORDER if BACKENDS[name].runs_on(y))
    if not BACKENDS[choice].runs_on(y):
        raise RuntimeError(
            f"The MambaOut backend {choice!r} does not run on this input ({y.device.type}, "
            f"{y.dtype}) in this state (tracing and torch.compile see the reference formula); "
            "use backend='auto' or 'reference'.")
    return choice


def mix(block: GatedCNNBlock, y: torch.Tensor,
        shortcut: torch.Tensor | None = None) -> torch.Tensor:
    """``block``'s mixer on ``y`` (plus ``shortcut`` if given), by the implementation that
    :func:`select` picks for ``block.backend``."""
    return BACKENDS[select(block.backend, y)].mix(block, y, shortcut)


def conv(layer: nn.Conv2d, x: torch.Tensor, choice: str = 'auto') -> torch.Tensor:
    """``layer(x)`` for the stem's and downsampling layers' (dense, zero-padded) convs, by the
    implementation that :func:`select` picks for ``choice``."""
    return BACKENDS[select(choice, x)].conv(layer, x)
