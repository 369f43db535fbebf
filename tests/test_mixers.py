"""The one place that picks the token mixer's implementation (each implementation's agreement
with the formula is tested beside it, e.g. tests/test_cpu_kernels.py)."""
import pytest
import torch

from mambaout_mm import MambaOutBackbone, cpu_kernels, mixers
from mambaout_mm.mambaout import GatedCNNBlock


def test_auto_takes_the_cpu_kernels_where_they_run_else_the_formula():
    x = torch.randn(1, 4, 4, 8)
    # fp32 kernels exist on every CPU (test_cpu_kernels.py fails where the probe rejects them)
    assert cpu_kernels.unavailable(torch.float32) is None
    assert mixers.select('auto', x) == 'cpu_kernels'
    assert mixers.select('auto', x.double()) == 'reference'
    assert mixers.select('auto', torch.randn(1, 4, 4, 8, device='meta')) == 'reference'


def test_a_named_backend_that_cannot_run_says_so():
    with pytest.raises(RuntimeError, match="'cpu_kernels' does not run on this input"):
        mixers.select('cpu_kernels', torch.randn(1, 4, 4, 8, device='meta'))
    with pytest.raises(ValueError, match="Unknown MambaOut mixer 'fast'.*'cpu_kernels'"):
        MambaOutBackbone('femto', mixer='fast')


def test_a_config_names_the_mixer_of_every_block():
    backbone = MambaOutBackbone('femto', mixer='reference')
    blocks = [m for m in backbone.modules() if isinstance(m, GatedCNNBlock)]
    assert len(blocks) == sum(backbone.depths) and {b.mixer for b in blocks} == {'reference'}
    assert {layer.mixer for layer in backbone.downsample_layers} == {'reference'}  # convs too
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
    reference = mixers.conv(layer, x, 'reference')
    assert reference.is_contiguous()
    kernels = mixers.conv(layer, x, 'cpu_kernels')
    assert kernels.is_contiguous(memory_format=torch.channels_last)
    assert not kernels.is_contiguous()
    torch.testing.assert_close(kernels, reference, rtol=1e-5, atol=1e-5)
    assert mixers.conv(layer, x).is_contiguous(memory_format=torch.channels_last)  # auto
    assert mixers.conv(layer.double(), x.double()).is_contiguous()  # the kernels have no float64
