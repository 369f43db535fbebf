"""FP16 training numerics of the paper's models, proven on a CPU.

CUDA's FP16 autocast policy is emulated (:mod:`mambaout_mm.engine.fp16_emulation`) and the loss
scaled dynamically as ``AmpOptimWrapper`` does; the results are compared with float32. The GPU suite
(``test_gpu.py``) checks the same on a GPU where one exists.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from mambaout_mm import MambaOutBackbone
from mambaout_mm.benchmark.synthetic import ConfigModel
from mambaout_mm.engine.fp16_emulation import gpu_fp16_autocast, largest_values
from mambaout_mm.models.random_weights import randomize_
from mambaout_mm.utils import compat

from .precision_helpers import HEAVY, TOLERANCE, relative_errors
from .tools_helpers import config


def test_matrix_products_are_fp16_and_norms_fp32_as_on_a_gpu():
    torch.manual_seed(0)
    fc, x = torch.nn.Linear(8, 8), torch.randn(4, 8)
    with gpu_fp16_autocast() as mode:
        y = fc(x)
        normed = F.layer_norm(y, (8,))
        huge = fc(x * 1e6)
    assert y.dtype == torch.float16 and normed.dtype == torch.float32
    rounded = [t.half().float() for t in (x, fc.weight, fc.bias)]
    torch.testing.assert_close(y, F.linear(*rounded).half())
    assert not huge.isfinite().all() and mode.overflows > 0  # beyond 65504, as on a GPU
    assert 0 < mode.max_abs < 65504


def test_mmcv_ops_compute_fp16_inputs_in_float32():
    from mmcv.ops import RoIAlign
    feats = torch.randn(1, 8, 16, 16).half()
    rois = torch.tensor([[0., 1., 1., 10., 12.], [0., 3., 2., 15., 9.]])
    expected = RoIAlign(4, 1.0, 2)(feats.float(), rois)
    with gpu_fp16_autocast():
        out = RoIAlign(4, 1.0, 2)(feats, rois)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), expected, rtol=1e-3, atol=1e-3)


def test_recording_the_largest_values_leaves_outputs_as_they_are():
    class Pair(torch.nn.Module):
        def forward(self, x):
            return x * 3, (x - 5,)

    pair, x = Pair(), torch.tensor([1.0, -2.0])
    with largest_values({'pair': [pair]}) as largest:
        out = pair(x)
    torch.testing.assert_close(out[0], x * 3)
    torch.testing.assert_close(out[1][0], x - 5)
    assert largest == {'pair': 7.0}


@pytest.mark.parametrize('arch', ['tiny', *HEAVY])
def test_backbone_features_in_fp16_follow_fp32(arch):
    model = randomize_(MambaOutBackbone(arch)).eval()
    x = torch.randn(2, 3, 512, 512, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        refs = model(x)
        with gpu_fp16_autocast() as mode:
            outs = model(x)
    assert mode.overflows == 0
    assert max(relative_errors(outs, refs)) < TOLERANCE[torch.float16]


#: the first loss scale: at AmpOptimWrapper's 65536 the first steps of a randomly initialised
#: detector overflow and are skipped while the scale halves, on a GPU as here (``test_gpu.py``
#: follows that trajectory on a GPU); from 256 the steps are taken, so their gradients are checked
INIT_SCALE = 2.0 ** 8


def train(model: ConfigModel, data: dict, iters: int, fp16: bool) -> tuple[list, list, list]:
    """``iters`` AdamW steps on one batch; the losses, the loss scales after each step, and
    whether each step's unscaled gradients were finite."""
    net = model.model.train()
    torch.manual_seed(0)  # the same RoI samples in both runs
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    scaler = compat.grad_scaler('cpu', enabled=fp16, init_scale=INIT_SCALE)
    losses, scales, finite = [], [], []
    for _ in range(iters):
        with gpu_fp16_autocast() if fp16 else torch.enable_grad():
            loss = net.parse_losses(net(**data, mode='loss'))[0]
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        finite.append(all(p.grad.isfinite().all() for p in net.parameters()
                          if p.grad is not None))
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        scales.append(scaler.get_scale() if fp16 else 1.0)
    return losses, scales, finite


#: the paper's models at the paper's sizes (batch 2): minutes each on a CPU
PAPER_MODELS = [('mask_rcnn/mambaout_{}_1x.py', [2, 3, 800, 1344]),
                ('upernet/mambaout_{}_160k.py', [2, 3, 512, 512])]


@pytest.mark.slow
@pytest.mark.cpu_grad_scaler
@pytest.mark.parametrize('path,shape', PAPER_MODELS, ids=['mask_rcnn', 'upernet'])
def test_paper_models_train_in_fp16_like_fp32(path, shape, arch='tiny'):
    """Two iterations from the same random weights: the FP16 losses are finite and within 1% of
    float32's, the gradients are finite after unscaling, and the scale moves as GradScaler's."""
    torch.manual_seed(0)
    model = ConfigModel(config(path.format(arch)))
    reference = copy.deepcopy(model)
    data = model.batch(shape, training=True)
    losses, scales, finite = train(model, data, 2, fp16=True)
    ref_losses, _, _ = train(reference, data, 2, fp16=False)
    assert all(map(math.isfinite, losses)), losses
    assert abs(losses[0] - ref_losses[0]) < 1e-2 * abs(ref_losses[0]), (losses, ref_losses)
    assert all(finite), f'gradients overflowed at loss scale {INIT_SCALE}'
    for before, after, ok in zip([INIT_SCALE, *scales], scales, finite):
        assert after == (before if ok else before / 2)  # growth only after 2000 finite steps
