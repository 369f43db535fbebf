"""The token mixer's implementations and the one place that picks one."""
import copy

import pytest
import torch

from mambaout_mm import MambaOutBackbone, cpu_kernels, mixers
from mambaout_mm.mambaout import GatedCNNBlock


@pytest.mark.parametrize('backend', sorted(set(mixers.BACKENDS) - {'reference'}))
@pytest.mark.parametrize('conv_ratio,ls_init_value', [(1.0, None), (1.25, 0.5), (8 / 3, None)])
def test_every_backend_computes_the_formula(backend, conv_ratio, ls_init_value):
    """Forward and backward equal the reference formula's on every input it runs on."""
    torch.manual_seed(0)
    block = GatedCNNBlock(32, conv_ratio=conv_ratio, ls_init_value=ls_init_value)
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.2)
    reference = copy.deepcopy(block)
    block.mixer, reference.mixer = backend, 'reference'
    x = torch.randn(2, 9, 11, 32)
    if not mixers.BACKENDS[backend].runs_on(x):
        pytest.skip(f'{backend} does not run on this CPU ({mixers.select("auto", x)} would)')
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out, ref = block(x1), reference(x2)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    out.square().sum().backward()
    ref.square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-4)
    for (name, p), q in zip(block.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-4, msg=name)


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
    auto = copy.deepcopy(backbone)
    for b in auto.modules():
        if isinstance(b, GatedCNNBlock):
            b.mixer = 'auto'
    x = torch.randn(1, 3, 64, 64)
    for out, ref in zip(auto(x), backbone(x)):
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
