"""FP16 numerics of DINO and RetinaNet, proven on a CPU as Mask R-CNN's are
(:mod:`tests.test_fp16_numerics`): CUDA's FP16 autocast emulated, mmcv's deformable attention as
its CUDA op rounds fp16 input, two AdamW steps against float32 from the same weights.

The configs train in float32, as mmdet's own DINO and Swin RetinaNet configs do (docs/heads.md:
why); these tests hold what ``--amp`` would compute on a GPU."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from mmcv.ops import multi_scale_deform_attn as msda

from mambaout_mm.benchmark.synthetic import ConfigModel
from mambaout_mm.engine.fp16_emulation import gpu_fp16_autocast
from mambaout_mm.utils import compat

from .tools_helpers import config

#: the first loss scale: from 256 the first steps are taken (at AmpOptimWrapper's 65536 the
#: first steps of a random detector overflow and are skipped while the scale halves)
INIT_SCALE = 2.0 ** 8


def emulated_error(shapes: torch.Tensor) -> float:
    torch.manual_seed(0)
    keys = int((shapes[:, 0] * shapes[:, 1]).sum())
    value = torch.randn(1, keys, 2, 8)
    locations = torch.rand(1, 7, 2, len(shapes), 4, 2)
    weights = torch.rand(1, 7, 2, len(shapes), 4)
    exact = msda.multi_scale_deformable_attn_pytorch(value, shapes, locations, weights)
    with gpu_fp16_autocast():
        emulated = msda.multi_scale_deformable_attn_pytorch(value.half(), shapes, locations,
                                                            weights)
    assert emulated.dtype == torch.float16
    return float((emulated.float() - exact).norm() / exact.norm())


def test_deformable_attention_runs_in_fp16_as_the_cuda_op():
    """fp16 value: fp16 out, its sampling positions (in pixels) and weights rounded to fp16
    first. On small maps that is fp16's rounding; on a map 336 wide (a stride-4 level of a
    1333-wide image) positions lie 0.25 px apart, and sampling noise-like features moves far."""
    small = emulated_error(torch.tensor([[6, 8], [3, 4]]))
    wide = emulated_error(torch.tensor([[40, 336], [20, 168]]))
    assert small < 3e-3
    assert wide > 5 * small


def train(model: ConfigModel, data: dict, iters: int, fp16: bool) -> tuple[list, list]:
    """``iters`` AdamW steps on one batch; the losses and whether each step's unscaled gradients
    were finite."""
    net = model.model.train()
    torch.manual_seed(0)  # the same denoising queries and samples in both runs
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    scaler = compat.grad_scaler('cpu', enabled=fp16, init_scale=INIT_SCALE)
    losses, finite = [], []
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
    return losses, finite


@pytest.mark.slow  # a minute or two each on the shared 2 cores
@pytest.mark.cpu_grad_scaler
@pytest.mark.parametrize('path', ['dino/dino_mambaout_femto_shapes.py',
                                  'retinanet/retinanet_mambaout_femto_shapes.py'])
def test_femto_detectors_train_in_fp16_like_fp32(path):
    """Two steps from the same random weights (batch 2, 128x192): the FP16 losses are finite and
    within 1% of float32's, and the unscaled gradients are finite."""
    torch.manual_seed(0)
    model = ConfigModel(config(path))
    # ConfigModel leaves parameters that only init_weights sets as torch.Tensor left them
    # (DINO's level_embed: whatever the memory held); the femto configs load no weights
    model.model.init_weights()
    reference = copy.deepcopy(model)
    data = model.batch([2, 3, 128, 192], training=True)
    losses, finite = train(model, data, 2, fp16=True)
    ref_losses, _ = train(reference, data, 2, fp16=False)
    assert all(map(math.isfinite, losses)), losses
    for ours, theirs in zip(losses, ref_losses):
        assert abs(ours - theirs) < 1e-2 * abs(theirs), (losses, ref_losses)
    assert all(finite), f'gradients overflowed at loss scale {INIT_SCALE}'
