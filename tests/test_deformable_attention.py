"""mmcv 2.1.0's multi-scale deformable attention (DINO's encoder and decoder, Mask2Former's pixel
decoder) has CUDA and MLU kernels only: on a CPU ``MultiScaleDeformableAttention`` runs its
PyTorch form, ``multi_scale_deformable_attn_pytorch`` (``F.grid_sample`` per level). These tests
hold that path to what it should compute."""
from __future__ import annotations

import pytest
import torch
from mmcv.ops import multi_scale_deform_attn as msda

SHAPES = torch.tensor([[6, 8], [3, 4], [2, 2]])  # (h, w) of three levels
HEADS, LEVELS, POINTS, DIMS = 4, 3, 2, 32


def module() -> msda.MultiScaleDeformableAttention:
    torch.manual_seed(0)
    attention = msda.MultiScaleDeformableAttention(
        embed_dims=DIMS, num_heads=HEADS, num_levels=LEVELS, num_points=POINTS, batch_first=True)
    # non-zero offsets and weights (their init is a fixed pattern and uniform weights)
    for layer in (attention.sampling_offsets, attention.attention_weights):
        torch.nn.init.normal_(layer.weight, std=0.5)
    return attention.eval()


def inputs(queries: int = 5):
    generator = torch.Generator().manual_seed(1)
    keys = int((SHAPES[:, 0] * SHAPES[:, 1]).sum())
    value = torch.randn(2, keys, DIMS, generator=generator)
    query = torch.randn(2, queries, DIMS, generator=generator)
    reference = torch.rand(2, queries, LEVELS, 2, generator=generator)
    start = torch.cat([SHAPES.new_zeros(1), (SHAPES[:, 0] * SHAPES[:, 1]).cumsum(0)[:-1]])
    return query, value, reference, start


def test_the_module_runs_the_pytorch_form_on_a_cpu(monkeypatch):
    """Its output is the PyTorch form's, projected, plus the query (identity)."""
    calls = []
    original = msda.multi_scale_deformable_attn_pytorch

    def spy(*args):
        calls.append(original(*args))
        return calls[-1]

    monkeypatch.setattr(msda, 'multi_scale_deformable_attn_pytorch', spy)
    query, value, reference, start = inputs()
    attention = module()
    with torch.no_grad():
        out = attention(query, value=value, reference_points=reference, spatial_shapes=SHAPES,
                        level_start_index=start)
    assert len(calls) == 1 and calls[0].device.type == 'cpu'
    torch.testing.assert_close(out, attention.output_proj(calls[0]) + query)


def test_the_compiled_op_has_no_cpu_kernel():
    """The reason for the fallback: mmcv's own function refuses CPU tensors."""
    query, value, reference, start = inputs()
    locations = reference[:, :, None, :, None, :].expand(2, 5, HEADS, LEVELS, POINTS, 2)
    weights = torch.full((2, 5, HEADS, LEVELS, POINTS), 1 / (LEVELS * POINTS))
    with pytest.raises(RuntimeError, match="implementation for device cpu not found"):
        msda.MultiScaleDeformableAttnFunction.apply(
            value.view(2, -1, HEADS, DIMS // HEADS), SHAPES, start, locations.contiguous(),
            weights, 64)


def bilinear(image: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """``image`` (C, H, W) at pixel coordinates (x, y), pixel centres at +0.5, zero outside."""
    c, h, w = image.shape
    x0, y0 = int(torch.floor(torch.tensor(x - 0.5))), int(torch.floor(torch.tensor(y - 0.5)))
    out = torch.zeros(c, dtype=image.dtype)
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - abs(x - 0.5 - xi)) * (1 - abs(y - 0.5 - yi))
            if 0 <= xi < w and 0 <= yi < h:
                out += weight * image[:, yi, xi]
    return out


def test_the_pytorch_form_is_deformable_attention():
    """Each head's output is the attention-weighted sum, over levels and points, of its value map
    sampled bilinearly at the sampling locations (normalised, (0, 0) the top-left corner)."""
    generator = torch.Generator().manual_seed(2)
    keys = int((SHAPES[:, 0] * SHAPES[:, 1]).sum())
    head_dims = DIMS // HEADS
    value = torch.randn(1, keys, HEADS, head_dims, dtype=torch.float64, generator=generator)
    locations = torch.rand(1, 3, HEADS, LEVELS, POINTS, 2, dtype=torch.float64,
                           generator=generator) * 1.2 - 0.1  # some outside the map
    weights = torch.rand(1, 3, HEADS, LEVELS, POINTS, dtype=torch.float64, generator=generator)
    out = msda.multi_scale_deformable_attn_pytorch(value, SHAPES, locations, weights)
    maps = value[0].split([int(h * w) for h, w in SHAPES], dim=0)
    for q in range(3):
        for head in range(HEADS):
            expected = torch.zeros(head_dims, dtype=torch.float64)
            for level, (h, w) in enumerate(SHAPES.tolist()):
                image = maps[level][:, head].T.reshape(head_dims, h, w)
                for p in range(POINTS):
                    x, y = locations[0, q, head, level, p].tolist()
                    expected += weights[0, q, head, level, p] * bilinear(image, x * w, y * h)
            torch.testing.assert_close(out[0, q, head * head_dims:(head + 1) * head_dims],
                                       expected)


def test_the_pytorch_form_has_the_gradients_of_its_function():
    generator = torch.Generator().manual_seed(3)
    keys = int((SHAPES[:, 0] * SHAPES[:, 1]).sum())
    value = torch.randn(1, keys, 2, 4, dtype=torch.float64, generator=generator)
    locations = torch.rand(1, 2, 2, LEVELS, POINTS, 2, dtype=torch.float64, generator=generator)
    weights = torch.rand(1, 2, 2, LEVELS, POINTS, dtype=torch.float64, generator=generator)
    for tensor in (value, locations, weights):
        tensor.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda v, loc, wt: msda.multi_scale_deformable_attn_pytorch(v, SHAPES, loc, wt),
        (value, locations, weights))
