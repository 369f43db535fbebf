"""MambaOut on CPUs: the gated block's token mixer (fused GEMMs, a written-out backward) and
the trunk's strided convs.

The mixer computes ``fc2(act(g) * cat(i, dwconv(c))) [+ shortcut]`` from the normed input ``y``,
where ``fc1(y) = [g | i | c]``. Eager PyTorch spends a third of its CPU time on that formula outside
the GEMMs: bias copies, the activation, slicing, concatenation, and a depthwise-conv weight gradient
that takes six times the forward convolution. Here

* every ``fc1`` part is its own GEMM on a contiguous row block of the weight, so nothing is sliced
  or concatenated; oneDNN adds the bias (and, without autograd, applies the activation and the
  ``i`` gate) in the GEMM's epilogue, and adds the shortcut in ``fc2``'s; where oneDNN has no
  AVX-512, ATen's GEMMs run instead and the same epilogues follow them in place
  (:func:`isa_kernels`);
* the backward is written out (:class:`GatedMixer`): the gradients of ``g``, ``i`` and ``c`` are
  made where their GEMMs read them (the activation's backward in place), with no buffer that
  gathers them; the depthwise convolution's weight gradient is a convolution of the input with
  the output gradient, one per image (faster than PyTorch's kernel, docs/benchmarks.md);
* the stem's and downsampling layers' convs (:func:`conv`) run on channels-last input, so their
  outputs lie as the NHWC LayerNorms after them read them, and their weight gradient reads the
  memory format that is fastest on this ISA (:class:`Conv`).

Same parameters, same function: the results match :meth:`GatedCNNBlock.mix_reference` to float32
rounding (tests). They run in the dtypes that this CPU's GEMMs support (:func:`runs_in`, probed
once per process: bfloat16 needs oneDNN on AVX-512, native with AVX512-BF16 or AMX, else
emulated); everything else, and other devices, take the reference formula.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log

from ..utils import compat, cpu_support

_linear = getattr(getattr(torch.ops, 'mkldnn', None), '_linear_pointwise', None)

#: activation -> (oneDNN epilogue name, algorithm, eager function, backward op)
_ACTS = {
    'gelu': ('gelu', 'none', F.gelu, torch.ops.aten.gelu_backward),
    'silu': ('swish', '', F.silu, torch.ops.aten.silu_backward),
}


class MixerWeights(NamedTuple):
    """The parameters of one mixer, cast to the compute dtype, and its channel split."""
    fc1_weight: torch.Tensor   # (2 * hidden, dim): rows [g | i | c]
    fc1_bias: torch.Tensor
    conv_weight: torch.Tensor  # (conv channels, 1, k, k)
    conv_bias: torch.Tensor
    fc2_weight: torch.Tensor   # (dim, hidden): columns [i | c]
    fc2_bias: torch.Tensor
    hidden: int
    n_identity: int            # channels of i; conv channels = hidden - n_identity
    act: str


def _onednn_fc(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               act: str = 'none', algorithm: str = '') -> torch.Tensor:
    return _linear(x, weight, bias, act, [], algorithm)


def _onednn_fc_then(x: torch.Tensor, other: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor | None, op: str) -> torch.Tensor:
    return _linear.binary(x, other, weight, bias, op)


#: oneDNN epilogue name -> the same activation in place, for ATen's GEMMs
_IN_PLACE = {
    'none': lambda t, algorithm: t,
    'gelu': lambda t, algorithm: torch._C._nn.gelu_(t, approximate=algorithm),
    'swish': lambda t, algorithm: F.silu(t, inplace=True),
}


def _aten_fc(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
             act: str = 'none', algorithm: str = '') -> torch.Tensor:
    return _IN_PLACE[act](F.linear(x, weight, bias), algorithm)


def _aten_fc_then(x: torch.Tensor, other: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None, op: str) -> torch.Tensor:
    out = F.linear(x, weight, bias)
    return out.add_(other) if op == 'add' else out.mul_(other)


class IsaKernels(NamedTuple):
    """What the kernels run differently by ISA. ``fc(x, w, b, act, algorithm)``:
    ``act(linear(x))``; ``fc_then(x, other, w, b, op)``: ``linear(x) + other`` or
    ``linear(x) * other`` (``op`` 'add' or 'mul'); ``conv_input_layout(t)``: the NCHW view ``t``
    in the memory format from which oneDNN computes the convs' weight gradients fastest."""
    name: str  # whose GEMMs
    fc: Callable[..., torch.Tensor]
    fc_then: Callable[..., torch.Tensor]
    conv_input_layout: Callable[[torch.Tensor], torch.Tensor]


#: oneDNN's inner product with the activation and the add or mul in its epilogue; the conv's
#: weight gradient reads the channels-last input as it is (faster than NCHW there)
ONEDNN = IsaKernels('oneDNN', _onednn_fc, _onednn_fc_then, lambda c: c)
#: ATen's GEMM (MKL's sgemm on x86), then the epilogue in place; oneDNN's AVX2 depthwise conv
#: computes the weight gradient faster from an NCHW copy of its input
ATEN = IsaKernels('ATen', _aten_fc, _aten_fc_then, torch.Tensor.contiguous)


def has_onednn_gemms() -> bool:
    """Whether this PyTorch has oneDNN's linear-pointwise ops."""
    return _linear is not None and torch.backends.mkldnn.is_available()


@functools.cache
def isa_kernels() -> IsaKernels:
    """The kernels for this CPU, chosen once per process: oneDNN's fused GEMMs where oneDNN runs
    AVX-512, ATen's elsewhere (on AVX2 oneDNN's fp32 inner product is slower than MKL's sgemm;
    the side-by-side runs that chose this: docs/benchmarks.md)."""
    return ONEDNN if has_onednn_gemms() and cpu_support.onednn_avx512() else ATEN


def available(x: torch.Tensor) -> bool:
    """Whether :func:`gated_mix` runs on ``x``'s device and compute dtype on this CPU.

    Not while tracing (FLOP counters, TorchScript), under ``torch.compile`` or under a torch
    function mode (e.g. :mod:`.fp16_emulation`): those see the reference formula, whose
    functions they count, fuse or recast.
    """
    return (x.device.type == 'cpu' and not torch.jit.is_tracing() and not compat.is_compiling()
            and not compat.function_mode_active() and runs_in(compute_dtype(x)))


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The CPU autocast dtype under CPU autocast, else the input's dtype."""
    return compat.cpu_autocast_dtype() or x.dtype


def unavailable(dtype: torch.dtype) -> str | None:
    """Why the kernels cannot exist for ``dtype`` on this CPU, or ``None``: float32 runs on every
    CPU (oneDNN's or ATen's GEMMs), bfloat16 needs oneDNN's AVX-512 GEMMs. Where they can exist,
    a probe that rejects them means a broken kernel (the tests fail on it)."""
    if dtype not in (torch.float32, torch.bfloat16):
        return f'there are no kernels for {dtype}'
    if dtype == torch.bfloat16 and isa_kernels() is not ONEDNN:
        return 'their bfloat16 GEMMs need oneDNN with AVX-512'
    return None


@functools.cache
def runs_in(dtype: torch.dtype) -> bool:
    """Whether the kernels run in ``dtype`` on this CPU, decided once per process by a probe.

    The probe runs both paths (fused inference, and forward and backward with autograd) on a
    tiny mixer and compares them with the reference formula. oneDNN refuses primitives that its
    ISA cannot run (bfloat16 on AVX2) when they are created; that refusal, or a wrong result,
    turns the kernels off for ``dtype`` with one log line, and the reference formula runs instead.
    """
    if dtype not in (torch.float32, torch.bfloat16):
        return False
    reason = unavailable(dtype)
    if reason is None:
        try:
            error = _probe(dtype)
        except RuntimeError as err:  # oneDNN: "could not create a primitive descriptor ..."
            reason = f'oneDNN cannot run them ({str(err).split(". ")[0]})'
        else:
            if error < (1e-4 if dtype == torch.float32 else 5e-2):
                return True
            reason = f'their results differ from the reference formula by {error:.1e}'
    print_log(f'MambaOut CPU kernels are off for {str(dtype)[6:]} with torch {torch.__version__} '
              f'on this CPU ({cpu_support.describe()}): {reason}; the gated CNN blocks use their '
              f'reference formula.', logger='current')
    return False


@torch.inference_mode(False)
@torch.enable_grad()
@torch.autocast('cpu', enabled=False)
def _probe(dtype: torch.dtype) -> float:
    """Largest relative error of the kernels (inference, forward and backward) on a tiny mixer."""
    gen = torch.Generator().manual_seed(0)
    dim, hidden, n_identity, k = 8, 16, 8, 3

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(dtype)
    n_conv = hidden - n_identity
    weights = MixerWeights(rand(2 * hidden, dim), rand(2 * hidden), rand(n_conv, 1, k, k),
                           rand(n_conv), rand(dim, hidden), rand(dim), hidden, n_identity, 'gelu')
    y, shortcut = rand(2, 5, 6, dim), rand(2, 5, 6, dim)

    def reference(y: torch.Tensor, w: MixerWeights) -> torch.Tensor:
        g, i, c = torch.split(F.linear(y, w.fc1_weight, w.fc1_bias), (hidden, n_identity, n_conv),
                              dim=-1)
        c = _depthwise_conv(c, w.conv_weight, w.conv_bias)
        return F.linear(F.gelu(g) * torch.cat((i, c), dim=-1), w.fc2_weight, w.fc2_bias)

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return ((a.float() - b.float()).norm() / b.float().norm()).item()

    def leaves(w: MixerWeights, dtype: torch.dtype) -> MixerWeights:  # every weight gets a grad
        return MixerWeights(*(t.detach().to(dtype, copy=True).requires_grad_(True)
                              for t in w[:6]), *w[6:])

    fp32_weights, weights = leaves(weights, torch.float32), leaves(weights, dtype)
    y_ref = y.float().clone().requires_grad_(True)
    expected = reference(y_ref, fp32_weights) + shortcut.float()
    expected.square().sum().backward()
    with torch.no_grad():
        inference = _mix_inference(y, shortcut, weights)
    y_grad = y.clone().requires_grad_(True)
    out = GatedMixer.apply(y_grad, shortcut, *weights)
    out.float().square().sum().backward()
    grads = [(y_grad.grad, y_ref.grad), *((w.grad, r.grad) for w, r in zip(weights[:6],
                                                                          fp32_weights[:6]))]
    return max(rel(inference, expected), rel(out, expected), *(rel(a, b) for a, b in grads))


def _depthwise_conv(c: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Depthwise conv with 'same' padding on NHWC ``c``; NHWC out."""
    k = weight.shape[-1]
    out = F.conv2d(c.permute(0, 3, 1, 2), weight, bias, padding=k // 2, groups=weight.shape[0])
    return out.permute(0, 2, 3, 1)


def _depthwise_conv_backward(grad: torch.Tensor, c: torch.Tensor, weight: torch.Tensor,
                             conv_input_layout: Callable[[torch.Tensor], torch.Tensor]
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of :func:`_depthwise_conv` (NHWC ``grad`` and ``c``): input, weight, bias.

    With 'same' padding, dW[ch] = sum over images of xcorr(c[n, ch], grad[n, ch]): a depthwise
    convolution of the image (in the memory format ``conv_input_layout`` gives) with its own output
    gradient as the kernel.
    """
    channels, k = weight.shape[0], weight.shape[-1]
    grad_nchw, c_nchw = grad.permute(0, 3, 1, 2), c.permute(0, 3, 1, 2)
    grad_input = torch.ops.aten.convolution_backward(
        grad_nchw, c_nchw, weight, None, (1, 1), (k // 2, k // 2), (1, 1), False, (0, 0),
        channels, (True, False, False))[0]
    c_nchw = conv_input_layout(c_nchw)
    grad_weight = sum(F.conv2d(c_nchw[n:n + 1], grad_nchw[n].unsqueeze(1), padding=k // 2,
                               groups=channels) for n in range(c.shape[0]))
    return (grad_input.permute(0, 2, 3, 1), grad_weight.view_as(weight),
            grad.sum((0, 1, 2)))


def _mix_inference(y: torch.Tensor, shortcut: torch.Tensor | None, w: MixerWeights) -> torch.Tensor:
    """Forward without autograd: the activation and the ``i`` gate run in GEMM epilogues."""
    h, n_identity = w.hidden, w.n_identity
    act, algorithm = _ACTS[w.act][:2]
    kernels = isa_kernels()
    fc, fc_then = kernels.fc, kernels.fc_then
    w1, b1 = w.fc1_weight, w.fc1_bias
    rows_i, rows_c = slice(h, h + n_identity), slice(h + n_identity, 2 * h)
    c = _depthwise_conv(fc(y, w1[rows_c], b1[rows_c]), w.conv_weight, w.conv_bias)
    mixed = c.mul_(fc(y, w1[n_identity:h], b1[n_identity:h], act, algorithm))  # act(g_c) * c
    out = (fc(mixed, w.fc2_weight[:, n_identity:].contiguous(), w.fc2_bias) if shortcut is None else
           fc_then(mixed, shortcut, w.fc2_weight[:, n_identity:].contiguous(), w.fc2_bias, 'add'))
    if n_identity:
        g_i = fc(y, w1[:n_identity], b1[:n_identity], act, algorithm)
        mixed_i = fc_then(y, g_i, w1[rows_i], b1[rows_i], 'mul')  # act(g_i) * i
        out = fc_then(mixed_i, out, w.fc2_weight[:, :n_identity].contiguous(), None, 'add')
    return out


class GatedMixer(torch.autograd.Function):
    """The mixer with autograd: a forward that saves what the written-out backward reads."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, shortcut: torch.Tensor | None, fc1_weight: torch.Tensor,
                fc1_bias: torch.Tensor, conv_weight: torch.Tensor, conv_bias: torch.Tensor,
                fc2_weight: torch.Tensor, fc2_bias: torch.Tensor, hidden: int, n_identity: int,
                act: str) -> torch.Tensor:
        h = hidden
        act_fn = _ACTS[act][2]
        kernels = isa_kernels()
        fc, fc_then = kernels.fc, kernels.fc_then
        pre = fc(y, fc1_weight[:h], fc1_bias[:h])  # gate before its activation
        gate = act_fn(pre)
        i = fc(y, fc1_weight[h:h + n_identity], fc1_bias[h:h + n_identity])
        c = fc(y, fc1_weight[h + n_identity:], fc1_bias[h + n_identity:])
        c_conv = _depthwise_conv(c, conv_weight, conv_bias)
        mixed = y.new_empty(y.shape[:-1] + (h,))
        torch.mul(gate[..., :n_identity], i, out=mixed[..., :n_identity])
        torch.mul(gate[..., n_identity:], c_conv, out=mixed[..., n_identity:])
        out = (fc(mixed, fc2_weight, fc2_bias) if shortcut is None else
               fc_then(mixed, shortcut, fc2_weight, fc2_bias, 'add'))
        ctx.save_for_backward(y, pre, gate, i, c, c_conv, mixed, fc1_weight, conv_weight,
                              fc2_weight)
        ctx.split, ctx.act, ctx.has_shortcut = (h, n_identity), act, shortcut is not None
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        y, pre, gate, i, c, c_conv, mixed, w1, conv_weight, w2 = ctx.saved_tensors
        h, n_identity = ctx.split
        rows, dim = grad_out.shape[:-1].numel(), grad_out.shape[-1]
        grad_out2d, y2d = grad_out.reshape(rows, dim), y.reshape(rows, -1)
        grad_fc2_weight = grad_out2d.t().mm(mixed.reshape(rows, h))
        grad_mixed = grad_out2d.mm(w2).view(mixed.shape)

        # the gradients of fc1's outputs g, i and c, where the GEMMs below read them
        grad_g = torch.empty_like(grad_mixed)
        torch.mul(grad_mixed[..., :n_identity], i, out=grad_g[..., :n_identity])
        torch.mul(grad_mixed[..., n_identity:], c_conv, out=grad_g[..., n_identity:])
        _ACTS[ctx.act][3].grad_input(grad_g, pre, grad_input=grad_g)
        grad_c, grad_conv_weight, grad_conv_bias = _depthwise_conv_backward(
            grad_mixed[..., n_identity:] * gate[..., n_identity:], c, conv_weight,
            isa_kernels().conv_input_layout)
        grad_mixed[..., :n_identity].mul_(gate[..., :n_identity])
        parts = ((slice(0, h), grad_g.view(rows, h)),
                 (slice(h, h + n_identity), grad_mixed.view(rows, h)[:, :n_identity]),
                 (slice(h + n_identity, 2 * h), grad_c.reshape(rows, -1)))

        grad_y = parts[0][1].mm(w1[:h])
        grad_fc1_weight, grad_fc1_bias = torch.empty_like(w1), w1.new_empty(2 * h)
        for rows_of_w1, grad_part in parts:
            if grad_part.shape[1]:  # no identity part where every channel is convolved
                if rows_of_w1.start:
                    grad_y.addmm_(grad_part, w1[rows_of_w1])
                torch.mm(grad_part.t(), y2d, out=grad_fc1_weight[rows_of_w1])
                torch.sum(grad_part, 0, out=grad_fc1_bias[rows_of_w1])
        return (grad_y.view(y.shape), grad_out if ctx.has_shortcut else None, grad_fc1_weight,
                grad_fc1_bias, grad_conv_weight, grad_conv_bias, grad_fc2_weight,
                grad_out2d.sum(0), None, None, None)


class Conv(torch.autograd.Function):
    """A dense convolution whose weight gradient reads its input and output gradient in the
    memory format :func:`isa_kernels` gives (on AVX2, oneDNN's channels-last weight gradient of
    the trunk's strided convs is slower than from NCHW copies, docs/benchmarks.md)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.geometry, ctx.has_bias = (stride, padding), bias is not None
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, weight = ctx.saved_tensors
        stride, padding = ctx.geometry
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad[:3]

        def backward(grad_out, x, mask):
            return torch.ops.aten.convolution_backward(
                grad_out, x, weight, [weight.shape[0]] if ctx.has_bias else None, stride,
                padding, (1, 1), False, (0, 0), 1, mask)
        grad_x = backward(grad_out, x, (True, False, False))[0] if needs_x else None
        grad_weight = grad_bias = None
        if needs_weight or needs_bias:
            layout = isa_kernels().conv_input_layout
            _, grad_weight, grad_bias = backward(layout(grad_out), layout(x),
                                                 (False, needs_weight, needs_bias))
        return grad_x, grad_weight, grad_bias, None, None


def conv(layer: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` for a dense, ungrouped, zero-padded ``layer`` on a channels-last ``x`` (an
    NCHW image is made so: its output then lies as the NHWC LayerNorms after it read it), by
    :class:`Conv` under autograd. Autocast is off inside; ``x`` and the parameters are cast to
    the compute dtype."""
    dtype = compute_dtype(x)
    with torch.autocast('cpu', enabled=False):
        x = x.to(dtype).contiguous(memory_format=torch.channels_last)
        params = [layer.weight.to(dtype), None if layer.bias is None else layer.bias.to(dtype)]
        if torch.is_grad_enabled() and (x.requires_grad or any(
                p is not None and p.requires_grad for p in params)):
            return Conv.apply(x, *params, layer.stride, layer.padding)
        return F.conv2d(x, *params, layer.stride, layer.padding)


def gated_mix(y: torch.Tensor, shortcut: torch.Tensor | None, weights: MixerWeights
              ) -> torch.Tensor:
    """``fc2(act(g) * cat(i, dwconv(c)))``, plus ``shortcut`` if given, for NHWC ``y``.

    ``y``, ``shortcut`` and the weights must already be in the compute dtype; autocast is off
    inside.
    """
    with torch.autocast('cpu', enabled=False):
        if not torch.is_grad_enabled() or not (
                y.requires_grad or any(t.requires_grad for t in weights[:6])):
            return _mix_inference(y, shortcut, weights)
        return GatedMixer.apply(y, shortcut, *weights)
