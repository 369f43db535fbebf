"""The one place that picks the implementation of the token mixer and the trunk's convs (each
implementation's agreement with the formula is tested beside it, e.g. tests/test_cpu_kernels.py)."""
import pytest
import torch

from mambaout_mm import MambaOutBackbone
from mambaout_mm.models import backends, cpu_kernels
from mambaout_mm.models.mambaout import GatedCNNBlock


def test_auto_takes_the_cpu_kernels_where_they_run_else_the_formula():
    x = torch.randn(1, 4, 4, 8)
    # fp32 kernels exist on every CPU (test_cpu_kernels.py fails where the probe rejects them)
    assert cpu_kernels.unavailable(torch.float32) is None
    assert backends.select('auto', x) == 'cpu_kernels'
    assert backends.select('auto', x.double()) == 'reference'
    assert backends.select('auto', torch.randn(1, 4, 4, 8, device='meta')) == 'reference'


def test_a_named_backend_that_cannot_run_says_so():
    with pytest.raises(RuntimeError, match="'cpu_kernels' does not run on this input"):
        backends.select('cpu_kernels', torch.randn(1, 4, 4, 8, device='meta'))
    with pytest.raises(ValueError, match="Unknown MambaOut backend 'fast'.*'cpu_kernels'"):
        MambaOutBackbone('femto', backend='fast')


def test_a_config_names_the_backend_of_every_block_and_conv():
    backbone = MambaOutBackbone('femto', backend='reference')
    blocks = [m for m in backbone.modules() if isinstance(m, GatedCNNBlock)]
    assert len(blocks) == sum(backbone.depths) and {b.backend for b in blocks} == {'reference'}
    assert {layer.backend for layer in backbone.downsample_layers} == {'reference'}  # convs too
    auto = MambaOutBackbone('femto')
    auto.load_state_dict(backbone.state_dict())
    x = torch.randn(1, 3, 64, 64)
    for out, ref in zip(auto(x), backbone(x)):
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_the_convs_follow_the_choice():
    """cpu_kernels runs a conv on channels-last input, so its output lies channels-last; the
    layer itself keeps an NCHW image's layout. Values agree (gradients: test_cpu_kernels.py)."""
    layer = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
    x = torch.randn(2, 3, 16, 16)
    reference = backends.conv(layer, x, 'reference')
    assert reference.is_contiguous()
    kernels = backends.conv(layer, x, 'cpu_kernels')
    assert kernels.is_contiguous(memory_format=torch.channels_last)
    assert not kernels.is_contiguous()
    torch.testing.assert_close(kernels, reference, rtol=1e-5, atol=1e-5)
    assert backends.conv(layer, x).is_contiguous(memory_format=torch.channels_last)  # auto
    assert backends.conv(layer.double(), x.double()).is_contiguous()  # the kernels have no float64


def test_the_former_mixer_name_still_works_and_warns():
    with pytest.warns(DeprecationWarning, match='mixer= is now backend='):
        backbone = MambaOutBackbone('femto', mixer='reference')
    assert {layer.backend for layer in backbone.downsample_layers} == {'reference'}
    with pytest.raises(ValueError, match='disagree'):
        MambaOutBackbone('femto', backend='cpu_kernels', mixer='reference')
