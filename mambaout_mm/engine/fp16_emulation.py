"""The paper's FP16 mixed precision as a GPU computes it, emulated on a CPU at float32 speed.

CUDA autocast runs matrix products and convolutions in float16 (inputs rounded to fp16, products
accumulated in fp32, fp16 results), numerically sensitive functions (norms, softmax, losses, exp,
log, sums) in float32, and everything else in the dtype it is given, so fp16 tensors flow between
them with fp16's range and rounding. :class:`GpuFp16Autocast` applies that policy to the torch
functions called under it on a CPU, where fp16 matrix kernels are slow or missing: the fp16
functions compute in float32 on fp16-rounded inputs and round their result to fp16 (what tensor
cores do), so every tensor that would be fp16 on the GPU is fp16 here, and an overflow becomes
``inf`` as it would there. mmcv's CPU ops (RoIAlign, NMS) take float32: they get float32 copies of
fp16 tensors, and what they write into them is copied back; mmcv's deformable attention, whose
CUDA op takes fp16, runs as that op rounds (:func:`deformable_attention_as_cuda`).

With :func:`compat.grad_scaler` (torch's dynamic loss scaling, as ``AmpOptimWrapper`` uses it),
this lets CPU tests check FP16 training numerics (:mod:`tests.test_fp16_numerics`).
"""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from .nested import map_floats

#: computed in float16 by CUDA autocast (its "lower precision" list, the entries these models use)
FP16_FUNCTIONS = frozenset({
    F.linear, F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d,
    torch.matmul, torch.mm, torch.bmm, torch.addmm, torch.baddbmm, torch.Tensor.matmul,
    torch.Tensor.__matmul__, torch.Tensor.mm, torch.Tensor.bmm, torch.einsum,
})
#: computed in float32 by CUDA autocast (its "float32" list, the entries these models use)
FP32_FUNCTIONS = frozenset({
    F.layer_norm, F.group_norm, F.softmax, F.log_softmax, F.cross_entropy, F.nll_loss,
    F.binary_cross_entropy_with_logits, F.smooth_l1_loss, F.l1_loss, F.mse_loss,
    torch.exp, torch.log, torch.sum, torch.cumsum, torch.prod, torch.norm, torch.pow,
    torch.rsqrt, torch.softmax, torch.log_softmax, torch.Tensor.exp, torch.Tensor.log,
    torch.Tensor.sum, torch.Tensor.cumsum, torch.Tensor.prod, torch.Tensor.norm,
    torch.Tensor.pow, torch.Tensor.rsqrt, torch.Tensor.softmax, torch.Tensor.log_softmax,
})
#: computed in the widest float dtype of their inputs by CUDA autocast (its "promote" list)
PROMOTE_FUNCTIONS = frozenset({F.grid_sample})


class GpuFp16Autocast(TorchFunctionMode):
    """CUDA's FP16 autocast policy for torch functions, on a CPU (see the module docstring).

    Also records the largest finite magnitude among the fp16 results (``max_abs``) and how many
    of their values overflowed to inf or NaN (``overflows``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.max_abs = 0.0
        self.overflows = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FP16_FUNCTIONS:
            args, kwargs = map_floats((args, kwargs), lambda x: x.half().float())
            out = map_floats(func(*args, **kwargs), torch.Tensor.half)
            self._watch(out)
            return out
        if func in FP32_FUNCTIONS or (func in PROMOTE_FUNCTIONS and any(
                x.dtype == torch.float32 for x in tree_flatten((args, kwargs))[0]
                if torch.is_tensor(x))):
            args, kwargs = map_floats((args, kwargs), torch.Tensor.float)
        return func(*args, **kwargs)

    def _watch(self, out: Any) -> None:
        if torch.is_tensor(out) and out.numel():
            with torch.no_grad():
                finite = out.isfinite()
                self.overflows += int((~finite).sum())
                self.max_abs = max(self.max_abs, out[finite].abs().max().item()
                                   if finite.any() else 0.0)


class _Float32Ext:
    """An mmcv extension module whose functions get float32 copies of fp16 tensors; what the
    function writes into them is copied back (mmcv's ops write their outputs in place), and only
    that (an input copied onto itself would look modified to autograd)."""

    def __init__(self, ext: Any) -> None:
        self._ext = ext

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._ext, name)

        def call(*args, **kwargs):
            halves = [(x, x.float()) for x in (*args, *kwargs.values())
                      if torch.is_tensor(x) and x.dtype == torch.float16]
            copies = {id(h): f for h, f in halves}
            swap = lambda x: copies.get(id(x), x)  # noqa: E731
            out = fn(*map(swap, args), **{k: swap(v) for k, v in kwargs.items()})
            for half, full in halves:
                written = full.half()
                if not torch.equal(written, half):
                    half.copy_(written)
            return out
        return call


@contextlib.contextmanager
def mmcv_ops_in_float32() -> Iterator[None]:
    """Give the imported mmcv ops float32 copies of fp16 inputs for as long as it lasts."""
    patched = [m for name, m in list(sys.modules.items())
               if name.startswith('mmcv.ops.') and hasattr(m, 'ext_module')]
    for module in patched:
        module.ext_module = _Float32Ext(module.ext_module)
    try:
        yield
    finally:
        for module in patched:
            module.ext_module = module.ext_module._ext


@contextlib.contextmanager
def deformable_attention_as_cuda() -> Iterator[None]:
    """mmcv's multi-scale deformable attention as its CUDA op computes fp16 input (mmcv 2.1.0):
    the sampling locations and attention weights cast to the value's fp16 (``type_as(value)``),
    the sampling positions in pixels (``loc * size - 0.5``) computed in fp16, the output fp16.
    The sampling itself is float32 here (the kernel accumulates in fp16), and so is its
    backward (the kernel's adds fp16 gradients atomically): an optimistic emulation."""
    from mmcv.ops import multi_scale_deform_attn as msda
    original = msda.multi_scale_deformable_attn_pytorch

    def as_cuda(value, shapes, locations, weights):
        if value.dtype != torch.float16:
            return original(value, shapes, locations, weights)
        size = shapes.flip(-1).to(locations)[None, None, None, :, None, :]  # (w, h)
        pixels = locations.half() * size.half() - 0.5  # fp16, as the kernel's h_im, w_im
        locations = (pixels.float() + 0.5) / size
        return original(value.float(), shapes, locations, weights.half().float()).half()

    msda.multi_scale_deformable_attn_pytorch = as_cuda
    try:
        yield
    finally:
        msda.multi_scale_deformable_attn_pytorch = original


@contextlib.contextmanager
def largest_values(sites: dict[str, list[torch.nn.Module]], inputs: bool = False
                   ) -> Iterator[dict[str, float]]:
    """Record the largest magnitude of the outputs (or, with ``inputs``, the first inputs) of
    each site's modules while it lasts; site -> max |value| (``inf`` where one overflowed)."""
    largest = {name: 0.0 for name in sites}

    def record(name: str, values: Any) -> None:  # returns None: a hook's result would replace
        for value in tree_flatten(values)[0]:
            if torch.is_tensor(value) and value.is_floating_point() and value.numel():
                largest[name] = max(largest[name], value.detach().abs().max().float().item())

    handles = []
    for name, modules in sites.items():
        for module in modules:
            if inputs:
                handles.append(module.register_forward_pre_hook(
                    lambda m, args, name=name: record(name, args[0])))
            else:
                handles.append(module.register_forward_hook(
                    lambda m, args, out, name=name: record(name, out)))
    try:
        yield largest
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def gpu_fp16_autocast() -> Iterator[GpuFp16Autocast]:
    """Run the enclosed code under CUDA's FP16 autocast policy, on a CPU."""
    with mmcv_ops_in_float32(), deformable_attention_as_cuda(), GpuFp16Autocast() as mode:
        yield mode
