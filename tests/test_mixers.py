"""The one place that picks the token mixer's implementation (each implementation's agreement
with the formula is tested beside it, e.g. tests/test_cpu_kernels.py)."""
import pytest
import torch

from mambaout_mm import MambaOutBackbone, cpu_kernels, mixers
from mambaout_mm.mambaout import GatedCNNBlock


def test_auto_takes_the_cpu_kernels_where_they_run_else_the_formula():
    x = torch.randn(1, 4, 4, 8)
    expected = 'cpu_kernels' if cpu_kernels.runs_in(torch.float32) else 'reference'
    assert mixers.select('auto', x) == expected
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
    auto = MambaOutBackbone('femto')
    auto.load_state_dict(backbone.state_dict())
    x = torch.randn(1, 3, 64, 64)
    for out, ref in zip(auto(x), backbone(x)):
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
