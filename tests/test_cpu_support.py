"""What the CPU description reads from /proc/cpuinfo (a stand-in file here)."""
import io

import pytest

from mambaout_mm.utils import cpu_support

EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx avx2 fma
"""


@pytest.mark.parametrize('cpuinfo,expected', [
    (EPYC, 'AMD EPYC (family 25, model 1)'),  # "model" is read as itself, not as "model name"
    ('model name\t: Model X 9\ncpu family\t: 6\nmodel\t\t: 143\n',  # another order
     'Model X 9 (family 6, model 143)'),
    ('processor\t: 0\nmodel name\t: Some CPU\n', 'Some CPU'),  # no family and model: the name
])
def test_the_processor_is_named_with_its_family_and_model(monkeypatch, cpuinfo, expected):
    monkeypatch.setattr(cpu_support, 'open', lambda path: io.StringIO(cpuinfo), raising=False)
    assert cpu_support.processor_name() == expected


@pytest.mark.parametrize('aten_isa,limit,expected', [
    ('AVX512', None, True),
    ('AVX512', 'AVX512_CORE_AMX', True),
    ('AVX512', 'avx2', False),       # oneDNN limited below what ATen sees
    ('AVX2', None, False),
    ('AVX2', 'AVX512_CORE', False),  # a limit adds nothing the CPU lacks
])
def test_onednn_avx512_honours_the_isa_limit(monkeypatch, aten_isa, limit, expected):
    monkeypatch.setattr(cpu_support, 'isa', lambda: aten_isa)
    monkeypatch.delenv('DNNL_MAX_CPU_ISA', raising=False)
    if limit is None:
        monkeypatch.delenv('ONEDNN_MAX_CPU_ISA', raising=False)
    else:
        monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', limit)
    assert cpu_support.onednn_avx512() is expected
