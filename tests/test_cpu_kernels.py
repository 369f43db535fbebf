"""The CPU kernels of the gated CNN block against the block's reference formula."""
import copy
import functools
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from mambaout_mm.models import cpu_kernels
from mambaout_mm.models.backbone import MambaOutBackbone
from mambaout_mm.models.mambaout import GatedCNNBlock
from mambaout_mm.models.random_weights import randomize_
from mambaout_mm.utils import cpu_support

#: where oneDNN runs the kernels in bfloat16 (AVX512-BF16/AMX natively, AVX-512 emulated); not on
#: AVX2. Skipped only where the kernels cannot exist: where they can, a probe that rejects them
#: fails test_the_kernels_run_wherever_they_can (no skip hides a broken kernel).
bf16_kernels = pytest.mark.skipif(
    cpu_kernels.unavailable(torch.bfloat16) is not None,
    reason=f'no bfloat16 kernels on this CPU ({cpu_support.describe()}): '
           f'{cpu_kernels.unavailable(torch.bfloat16)}; the AVX2 tests run instead')


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16], ids=str)
def test_the_kernels_run_wherever_they_can(dtype):
    """The start-up probe accepts the kernels wherever they can exist (fp32: every CPU); a probe
    that rejects them, which is what a broken kernel causes, fails here instead of slowing every
    user down to the reference formula."""
    reason = cpu_kernels.unavailable(dtype)
    if reason is not None:
        pytest.skip(f'{reason} ({cpu_support.describe()})')
    assert cpu_kernels.runs_in(dtype), 'the probe rejected the kernels: see the log for the error'


@functools.cache
def torch_bf16_linear_error() -> str | None:
    """Plain torch's error for a bf16 ``F.linear`` on a batch of images, if it raises one: torch
    2.1 on a bf16 CPU under ``ONEDNN_MAX_CPU_ISA=AVX2`` does (a real AVX2 CPU runs it)."""
    try:
        F.linear(torch.ones(2, 3, 5, 32, dtype=torch.bfloat16),
                 torch.ones(8, 32, dtype=torch.bfloat16), torch.ones(8, dtype=torch.bfloat16))
    except RuntimeError as err:
        return str(err).splitlines()[0]
    return None


def skip_where_torch_cannot_run_bf16() -> None:
    error = torch_bf16_linear_error()
    if error:
        pytest.skip(f'torch {torch.__version__} itself cannot run bf16 linear layers here '
                    f'({cpu_support.describe()}: {error})')


def reference_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` whose blocks use the reference formula."""
    ref = copy.deepcopy(module)
    for m in ref.modules():
        if isinstance(m, GatedCNNBlock):
            m.backend = 'reference'
    return ref


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def assert_grads_close(model, reference, tol):
    """Every parameter gradient within ``tol`` of the reference's, relative to its largest entry."""
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert p.grad is not None, name
        error = ((p.grad - q.grad).abs().max() / q.grad.abs().max()).item()
        assert error < tol, (name, error)


@pytest.mark.parametrize('act,conv_ratio,ls_init_value', [
    ('gelu', 1.0, None),    # official: identity and conv channels, shortcut in fc2's epilogue
    ('silu', 1.25, 0.5),    # timm rw: layer scale, so the shortcut is added outside
    ('gelu', 8 / 3, None),  # every channel through the conv: no identity part
])
@pytest.mark.parametrize('kernels', [
    pytest.param(cpu_kernels.ONEDNN, marks=pytest.mark.skipif(
        not cpu_kernels.has_onednn_gemms(),
        reason=f'torch {torch.__version__} has no oneDNN linear-pointwise op')),
    cpu_kernels.ATEN,
], ids=lambda g: g.name)
def test_block_matches_reference_forward_and_backward(monkeypatch, kernels, act, conv_ratio,
                                                      ls_init_value):
    """Both kernel choices (oneDNN's fused GEMMs run on AVX-512, ATen's on AVX2) on this CPU."""
    monkeypatch.setattr(cpu_kernels, 'isa_kernels', lambda: kernels)
    torch.manual_seed(0)
    block = GatedCNNBlock(32, conv_ratio=conv_ratio, act=act, ls_init_value=ls_init_value)
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.2)
    reference = reference_copy(block)
    x = torch.randn(3, 9, 11, 32, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)

    out, out_ref = block(x), reference(x_ref)
    grad = torch.randn_like(out)
    out.backward(grad)
    out_ref.backward(grad)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    assert_grads_close(block, reference, tol=1e-5)

    for no_autograd in (torch.no_grad, torch.inference_mode):  # epilogue-fused path
        with no_autograd():
            torch.testing.assert_close(block(x), out_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('conv_input_layout', [cpu_kernels.ONEDNN.conv_input_layout,
                                               cpu_kernels.ATEN.conv_input_layout],
                         ids=['channels_last', 'nchw'])
@pytest.mark.parametrize('kernel_size', [3, 7])
def test_depthwise_conv_backward_matches_autograd(kernel_size, conv_input_layout):
    torch.manual_seed(0)
    c = torch.randn(3, 10, 13, 8, requires_grad=True)  # NHWC
    weight = torch.randn(8, 1, kernel_size, kernel_size, requires_grad=True)
    bias = torch.randn(8, requires_grad=True)
    out = cpu_kernels._depthwise_conv(c, weight, bias)
    grad = torch.randn_like(out)
    expected = torch.autograd.grad(out, (c, weight, bias), grad)
    got = cpu_kernels._depthwise_conv_backward(grad.contiguous(), c.detach(), weight.detach(),
                                               conv_input_layout)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


def test_backbone_training_step_matches_reference():
    torch.manual_seed(0)
    backbone = randomize_(MambaOutBackbone('femto', out_indices=(0, 1, 2, 3)), seed=2).train()
    reference = reference_copy(backbone)
    x = torch.randn(2, 3, 64, 96)
    for model in (backbone, reference):
        sum(f.square().mean() for f in model(x)).backward()
    assert_grads_close(backbone, reference, tol=1e-4)


@bf16_kernels
def test_bf16_autocast_features_within_2e_2_of_fp32():
    """Issue 6: under CPU bf16 autocast the stage features stay within 2e-2 relative error."""
    torch.manual_seed(0)
    backbone = randomize_(MambaOutBackbone('tiny'), seed=1).eval()
    x = torch.randn(1, 3, 128, 160)
    with torch.inference_mode():
        fp32 = backbone(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            bf16 = backbone(x)
    for i, (a, b) in enumerate(zip(fp32, bf16)):
        assert b.dtype == torch.bfloat16, i  # the kernels ran in bf16
        error = relative_error(b, a)
        assert 1e-4 < error < 2e-2, (i, error)


@bf16_kernels
def test_bf16_autocast_training_gradients_follow_fp32():
    torch.manual_seed(0)
    backbone = randomize_(MambaOutBackbone('femto'), seed=2).train()
    reference = copy.deepcopy(backbone)
    x = torch.randn(2, 3, 64, 64)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        sum(f.float().square().mean() for f in backbone(x)).backward()
    sum(f.square().mean() for f in reference(x)).backward()
    for (name, p), q in zip(backbone.named_parameters(), reference.parameters()):
        assert p.grad.dtype == torch.float32, name
        error = relative_error(p.grad, q.grad)
        assert error < 0.1, (name, error)


class LinearPointwiseByDefinition:
    """oneDNN's linear-pointwise ops (``torch.ops.mkldnn._linear_pointwise`` and its ``binary``
    overload) computed by their definitions, which every CPU runs in every dtype; records the
    dtypes of their inputs."""

    def __init__(self) -> None:
        self.dtypes: set[torch.dtype] = set()

    def __call__(self, x, weight, bias, attr, scalars, algorithm):
        self.dtypes.add(x.dtype)
        out = F.linear(x, weight, bias)
        if attr == 'gelu':
            return F.gelu(out, approximate=algorithm)
        return F.silu(out) if attr == 'swish' else out

    def binary(self, x, other, weight, bias, op):
        self.dtypes.add(x.dtype)
        out = F.linear(x, weight, bias)
        return out + other if op == 'add' else out * other


#: compute dtype (autocast's or the input's), input dtype -> tolerance of the mixer's output, of the
#: fused inference (bf16: its epilogues round in another order, 1.2% measured) and of gradients
KERNEL_PATHS = {
    'fp32': (torch.float32, torch.float32, (1e-5, 1e-5, 1e-5)),
    'bf16': (torch.bfloat16, torch.bfloat16, (1e-2, 3e-2, 2e-2)),
    'bf16, fp32 input': (torch.bfloat16, torch.float32, (1e-2, 3e-2, 2e-2)),  # shortcut added apart
}


@pytest.mark.parametrize('kernels', [cpu_kernels.ONEDNN, cpu_kernels.ATEN], ids=lambda k: k.name)
@pytest.mark.parametrize('bias,input_grad', [(True, True), (False, False)])
def test_conv_matches_autograd(monkeypatch, kernels, bias, input_grad):
    """The trunk's strided convs, their weight gradient from either ISA's layout (channels-last
    on AVX-512, NCHW copies on AVX2): output and gradients as PyTorch's own conv; only the
    gradients asked for."""
    monkeypatch.setattr(cpu_kernels, 'isa_kernels', lambda: kernels)
    torch.manual_seed(0)
    layer = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=bias)
    x = torch.randn(2, 8, 13, 10, requires_grad=input_grad)
    out, expected = cpu_kernels.conv(layer, x), layer(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    wanted = [x] * input_grad + list(layer.parameters())
    for got, want in zip(torch.autograd.grad(out, wanted, grad),
                         torch.autograd.grad(expected, wanted, grad)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    layer.weight.requires_grad_(False)  # a frozen stage's conv: the input's gradient only
    x = x.detach().requires_grad_(True)
    cpu_kernels.conv(layer, x).backward(grad)
    assert layer.weight.grad is None and x.grad is not None


@pytest.mark.parametrize('act,conv_ratio,ls_init_value', [
    ('gelu', 1.0, None), ('silu', 1.25, 0.5), ('gelu', 8 / 3, None)])
@pytest.mark.parametrize('path', KERNEL_PATHS)
def test_the_kernels_own_code_on_any_cpu_and_torch(monkeypatch, act, conv_ratio, ls_init_value,
                                                   path):
    """Everything of the kernels but oneDNN's fused GEMMs, which are replaced by their definitions,
    so that every CPU and torch checks it: the casts, the shortcut, the fused inference and the
    written-out backward, in float32 and in bfloat16 as AVX-512 machines run it. The mixer's output
    and every gradient follow the formula's under the same autocast."""
    dtype, x_dtype, (out_tol, inference_tol, grad_tol) = KERNEL_PATHS[path]
    if dtype == torch.bfloat16:
        skip_where_torch_cannot_run_bf16()  # the stand-ins for oneDNN's GEMMs are torch's
    linear = LinearPointwiseByDefinition()
    monkeypatch.setattr(cpu_kernels, '_linear', linear)
    monkeypatch.setattr(cpu_kernels, 'isa_kernels', lambda: cpu_kernels.ONEDNN)
    monkeypatch.setattr(cpu_kernels, 'runs_in', lambda d: d in (torch.float32, torch.bfloat16))
    torch.manual_seed(0)
    block = GatedCNNBlock(32, conv_ratio=conv_ratio, act=act, ls_init_value=ls_init_value)
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.2)
    block.backend = 'cpu_kernels'
    reference = reference_copy(block)
    x = torch.randn(3, 9, 11, 32).to(x_dtype)
    inputs = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        out, expected = (model(x_) for model, x_ in zip((block, reference), inputs))
        with torch.no_grad():
            inferred, inferred_expected = block(x), reference(x)
    assert linear.dtypes == {dtype}
    assert out.dtype == expected.dtype and inferred.dtype == inferred_expected.dtype
    assert relative_error(out - x, expected - x) < out_tol
    assert relative_error(inferred - x, inferred_expected - x) < inference_tol
    grad = torch.randn(out.shape)
    out.float().backward(grad)
    expected.float().backward(grad)
    assert relative_error(*(x_.grad for x_ in inputs)) < grad_tol
    for (name, p), q in zip(block.named_parameters(), reference.parameters()):
        assert p.grad.dtype == torch.float32, name
        assert relative_error(p.grad, q.grad) < grad_tol, name


def test_other_dtypes_take_the_reference_formula():
    assert not cpu_kernels.available(torch.zeros(1, dtype=torch.float64))
    assert not cpu_kernels.runs_in(torch.float16)
    block = GatedCNNBlock(16).double()
    x = torch.randn(1, 5, 5, 16, dtype=torch.float64)
    torch.testing.assert_close(block(x), reference_copy(block)(x))


def test_tracing_sees_the_reference_formula():
    """FLOP counters trace the model: they must see fc1, fc2 and the conv, not oneDNN kernels."""
    block = GatedCNNBlock(16).eval()
    x = torch.randn(1, 5, 5, 16)
    graph = str(torch.jit.trace(block, x).inlined_graph)
    assert 'aten::linear' in graph and 'mkldnn' not in graph
    assert cpu_kernels.available(x)


@pytest.fixture
def fresh_probe():
    """``runs_in`` decides anew in the test, and the real decision is restored after it."""
    cpu_kernels.runs_in.cache_clear()
    yield
    cpu_kernels.runs_in.cache_clear()


@pytest.mark.parametrize('probe_fails_with', [
    RuntimeError('could not create a primitive descriptor for the inner product forward '
                 'propagation primitive. Run workload with ONEDNN_VERBOSE=all'),
    0.5,  # a wrong result
])
def test_a_failed_probe_turns_the_kernels_off_once(monkeypatch, fresh_probe, probe_fails_with):
    calls, logged = [], []

    def probe(dtype):
        calls.append(dtype)
        if isinstance(probe_fails_with, Exception):
            raise probe_fails_with
        return probe_fails_with
    monkeypatch.setattr(cpu_kernels, '_probe', probe)
    monkeypatch.setattr(cpu_kernels, 'print_log', lambda msg, **kwargs: logged.append(msg))
    block = GatedCNNBlock(16)
    x = torch.randn(1, 5, 5, 16)
    for _ in range(3):
        torch.testing.assert_close(block(x), reference_copy(block)(x))
    assert calls == [torch.float32]  # decided once per process
    assert len(logged) == 1 and 'MambaOut CPU kernels are off for float32' in logged[0]
    assert ('could not create a primitive descriptor' if isinstance(probe_fails_with, Exception)
            else 'differ from the reference formula by 5.0e-01') in logged[0]


def test_bf16_autocast_without_kernels_runs_the_reference_formula(monkeypatch):
    """Where oneDNN has no bfloat16 kernels, a bf16-autocast block computes its formula."""
    skip_where_torch_cannot_run_bf16()
    monkeypatch.setattr(cpu_kernels, 'runs_in', lambda dtype: dtype == torch.float32)
    torch.manual_seed(0)
    block = GatedCNNBlock(16)
    x = torch.randn(1, 4, 4, 16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out, expected = block(x), reference_copy(block)(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert (out - block(x)).norm() / out.norm() < 2e-2  # and bf16 is close to fp32


AVX2_LIMITS = dict(ONEDNN_MAX_CPU_ISA='AVX2', ATEN_CPU_CAPABILITY='avx2',
                   MKL_ENABLE_INSTRUCTIONS='AVX2')
AVX2_SCRIPT = """
import json, torch
from mambaout_mm.models import cpu_kernels
from mambaout_mm.utils import cpu_support
from mambaout_mm.models.mambaout import GatedCNNBlock
torch.manual_seed(0)
block = GatedCNNBlock(32)
ref = GatedCNNBlock(32)
ref.load_state_dict(block.state_dict())
ref.backend = 'reference'
x = torch.randn(2, 6, 7, 32, requires_grad=True)
expected = ref(x).detach()
result = dict(isa=cpu_support.isa(), native=cpu_support.bf16_native(),
              gemms=cpu_kernels.isa_kernels().name,
              fp32_error=(block(x) - expected).abs().max().item(),
              fp32_kernels=cpu_kernels.runs_in(torch.float32),
              bf16_kernels=cpu_kernels.runs_in(torch.bfloat16))
try:  # the formula in plain torch: torch 2.1 on a bf16 CPU under ONEDNN_MAX_CPU_ISA=AVX2 refuses it
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ref(x.detach())
    result['torch_bf16'] = True
except RuntimeError as err:
    result.update(torch_bf16=False, torch_bf16_error=str(err).splitlines()[0])
if result['torch_bf16']:
    with torch.autocast('cpu', dtype=torch.bfloat16):
        bf16 = block(x)
        bf16.sum().backward()
    result.update(bf16_error=((bf16.float() - expected).norm() / expected.norm()).item(),
                  grad_finite=bool(x.grad.isfinite().all()))
print(json.dumps(result))
"""


@pytest.fixture(scope='module')
def avx2_run() -> tuple[dict, str]:
    """The script's results in a process limited to AVX2, and its log."""
    proc = subprocess.run([sys.executable, '-c', AVX2_SCRIPT], env={**os.environ, **AVX2_LIMITS},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout + proc.stderr


def test_kernels_under_the_avx2_limits(avx2_run):
    """On any CPU, in a process limited to AVX2 as most laptops are: fp32 kernels on ATen's GEMMs
    match the formula, and bfloat16 is neither native nor given to the kernels (said once in the
    log)."""
    result, log = avx2_run
    assert result['isa'] == 'AVX2' and not result['native'] and result['gemms'] == 'ATen'
    assert result['fp32_kernels']  # the kernels ran there, on ATen's GEMMs
    assert result['fp32_error'] < 1e-5
    assert not result['bf16_kernels']
    assert 'MambaOut CPU kernels are off for bfloat16' in log


def test_bf16_autocast_falls_back_to_the_formula_under_the_avx2_limits(avx2_run):
    """There bf16 autocast runs the formula without error, where torch itself can."""
    result, _ = avx2_run
    if not result['torch_bf16']:
        pytest.skip(f'torch {torch.__version__} itself cannot run the formula in bf16 under the '
                    f'AVX2 limits on this CPU ({result["torch_bf16_error"]}); a real AVX2 CPU can')
    assert result['bf16_error'] < 2e-2 and result['grad_finite']
