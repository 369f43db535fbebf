"""The dense-prediction backbone: shapes, strides, options, registries."""
import importlib
import math

import pytest
import torch
from mmengine.registry import init_default_scope

from mambaout_mm import MambaOutBackbone


def expected_size(size: int, stage: int) -> int:
    for _ in range(stage + 2):  # the stem halves twice, every later stage once more
        size = math.ceil(size / 2)
    return size


SIZES = [(64, 64), (97, 131), (33, 200)]


# small_rw (48M parameters, seconds to build) at one size: the odd one, where strides round up.
@pytest.mark.parametrize('arch, hw', [(arch, hw) for arch in ('femto', 'kobe', 'tiny')
                                      for hw in SIZES] + [('small_rw', (97, 131))])
def test_four_nchw_maps_at_strides_4_to_32(arch, hw):
    backbone = MambaOutBackbone(arch).eval()
    with torch.no_grad():
        outs = backbone(torch.randn(2, 3, *hw))
    assert isinstance(outs, tuple) and len(outs) == 4
    for i, out in enumerate(outs):
        assert out.shape == (2, backbone.dims[i], expected_size(hw[0], i), expected_size(hw[1], i))
        assert out.is_contiguous()


def test_outputs_go_through_their_own_layernorm():
    backbone = MambaOutBackbone('femto').eval()
    with torch.no_grad():
        backbone.norm2.weight.fill_(3.0)
        backbone.norm2.bias.fill_(0.5)
        out = backbone(torch.randn(1, 3, 64, 64))[2]
    assert backbone.norm2.eps == 1e-6
    torch.testing.assert_close(out.mean(1), torch.full_like(out.mean(1), 0.5), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(1, unbiased=False), torch.full_like(out.mean(1), 3.0),
                               atol=1e-2, rtol=0)


def test_no_head_no_final_norm_and_every_parameter_gets_a_gradient():
    backbone = MambaOutBackbone('femto', out_indices=(0, 2), drop_path_rate=0.1)
    keys = backbone.state_dict().keys()
    assert not any(k.startswith(('head.', 'norm.')) for k in keys)
    assert not any(k.startswith(('stages.3.', 'downsample_layers.3.', 'norm1.', 'norm3.'))
                   for k in keys)
    outs = backbone(torch.randn(2, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [48, 192]
    sum(o.sum() for o in outs).backward()
    assert all(p.grad is not None for p in backbone.parameters())


@pytest.mark.parametrize('bad', [(0, 4), (), (1, 1), (0.5,), 7])
def test_bad_out_indices_are_refused(bad):
    with pytest.raises(ValueError, match='out_indices'):
        MambaOutBackbone('femto', out_indices=bad)


def test_negative_out_indices_count_from_the_end():
    assert MambaOutBackbone('femto', out_indices=(-1, 1)).out_indices == (1, 3)


def test_frozen_stages_stop_gradients_and_stay_in_eval():
    backbone = MambaOutBackbone('femto', frozen_stages=2, drop_path_rate=0.2)
    backbone.train()
    frozen = [backbone.downsample_layers[0], backbone.stages[0], backbone.norm0,
              backbone.downsample_layers[1], backbone.stages[1], backbone.norm1]
    assert all(not m.training for m in frozen)
    assert backbone.stages[2].training and backbone.norm2.training
    sum(o.sum() for o in backbone(torch.randn(1, 3, 64, 64))).backward()
    for module in frozen:
        assert all(p.grad is None and not p.requires_grad for p in module.parameters())
    assert all(p.grad is not None for p in backbone.stages[2].parameters())
    with pytest.raises(ValueError, match='frozen_stages'):
        MambaOutBackbone('femto', frozen_stages=5)


def test_with_cp_gives_the_same_outputs_and_gradients():
    x = torch.randn(2, 3, 64, 64)
    results = []
    for with_cp in (False, True):
        torch.manual_seed(0)
        backbone = MambaOutBackbone('femto', drop_path_rate=0.3, with_cp=with_cp).train()
        torch.manual_seed(1)
        outs = backbone(x)
        sum((o ** 2).mean() for o in outs).backward()
        results.append((outs, {n: p.grad for n, p in backbone.named_parameters()}))
    (outs_a, grads_a), (outs_b, grads_b) = results
    for a, b in zip(outs_a, outs_b):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-6, atol=1e-7)


def test_registered_in_both_toolboxes():
    from mmdet.registry import MODELS as DET_MODELS
    from mmseg.registry import MODELS as SEG_MODELS
    assert DET_MODELS.get('MambaOutBackbone') is MambaOutBackbone
    assert SEG_MODELS.get('MambaOutBackbone') is MambaOutBackbone


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_builds_from_a_config_dict_in_each_default_scope(scope):
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    backbone = registry.build(dict(type='MambaOutBackbone', arch='femto', out_indices=(1, 2, 3),
                                   drop_path_rate=0.1))
    assert isinstance(backbone, MambaOutBackbone)
    assert backbone.out_indices == (1, 2, 3)
