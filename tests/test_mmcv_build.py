"""How tools/setup_env.sh picks the mmcv build: CPU or CUDA ops, architectures, cache keys and
the messages when the toolkit is missing or does not match (decided without building)."""
import importlib.util
import subprocess
import sys

import pytest

from .tools_helpers import tool

spec = importlib.util.spec_from_file_location('mmcv_build', tool('mmcv_build.py'))
mmcv_build = importlib.util.module_from_spec(spec)
sys.modules['mmcv_build'] = mmcv_build  # dataclasses look their module up
spec.loader.exec_module(mmcv_build)
make_plan, BuildPlanError = mmcv_build.make_plan, mmcv_build.BuildPlanError

H100, A100 = (9, 0), (8, 0)


def test_no_gpu_builds_cpu_ops_under_a_cpu_key():
    plan = make_plan('2.14.1+cu130', '13.0', [], {}, nvcc='13.0')
    assert (plan.cuda, plan.archs, plan.key) == (False, '', 'torch2.14.1+cu130-cpu')


def test_a_visible_gpu_builds_cuda_ops_for_its_architecture():
    plan = make_plan('2.1.2+cu121', '12.1', [H100, H100], {}, nvcc='12.4')
    assert (plan.cuda, plan.archs) == (True, '9.0')
    assert plan.key == 'torch2.1.2+cu121-cuda12.4-sm9.0'


def test_cache_keys_differ_by_torch_cuda_and_architectures():
    keys = {make_plan(*args).key for args in [
        ('2.14.1+cu130', '13.0', [], {}, '13.0'),
        ('2.14.1+cu130', '13.0', [H100], {}, '13.0'),
        ('2.14.1+cu130', '13.0', [A100], {}, '13.0'),
        ('2.14.1+cu130', '13.0', [], {'FORCE_CUDA': '1', 'TORCH_CUDA_ARCH_LIST': '8.0;9.0'},
         '13.0'),
        ('2.1.2+cu121', '12.1', [H100], {}, '12.1'),
        ('2.1.2+cu118', '11.8', [H100], {}, '11.8'),
    ]}
    assert len(keys) == 6


def test_the_users_force_cuda_is_honoured():
    assert not make_plan('2.14.1+cu130', '13.0', [H100], {'FORCE_CUDA': '0'}, '13.0').cuda
    plan = make_plan('2.14.1+cu130', '13.0', [], {'FORCE_CUDA': '1',
                                                  'TORCH_CUDA_ARCH_LIST': '9.0'}, '13.0')
    assert plan.cuda and plan.archs == '9.0'
    with pytest.raises(BuildPlanError, match='TORCH_CUDA_ARCH_LIST="8.0;9.0"'):
        make_plan('2.14.1+cu130', '13.0', [], {'FORCE_CUDA': '1'}, '13.0')
    with pytest.raises(BuildPlanError, match="FORCE_CUDA must be 0, 1 or unset, got 'yes'"):
        make_plan('2.14.1+cu130', '13.0', [], {'FORCE_CUDA': 'yes'}, '13.0')


def test_a_cuda_build_finds_the_math_headers_torch_came_with(tmp_path):
    includes = [str(tmp_path / 'cu13' / 'include'), str(tmp_path / 'cudnn' / 'include')]
    cuda = make_plan('2.14.1+cu130', '13.0', [H100], {}, '13.0', includes)
    assert f"MMCV_CPATH={':'.join(includes)}" in cuda.shell()
    assert "MMCV_CPATH=''" in make_plan('2.14.1+cu130', '13.0', [], {}, '13.0', includes).shell()


@pytest.mark.skipif(importlib.util.find_spec('nvidia') is None,
                    reason='torch here came without nvidia-* wheels')
def test_the_nvidia_wheels_headers_are_found():
    from pathlib import Path
    headers = {p.name for folder in mmcv_build.cuda_wheel_includes()
               for p in Path(folder).iterdir()}
    assert {'cusparse.h', 'cublas_v2.h'} <= headers  # included by torch's ATen/cuda headers


@pytest.mark.parametrize('torch_cuda,nvcc,message', [
    ('12.1', None, r'need nvcc 12.x .*CUDA 12.1.*none was found.*CUDA_HOME'),
    ('12.1', '13.0', r'nvcc is CUDA 13.0 but torch .* CUDA 12.1; the major versions must match'),
    (None, '13.0', r'torch 2.1.2 is a CPU-only build'),
])
def test_a_missing_or_mismatched_toolkit_is_named(torch_cuda, nvcc, message):
    with pytest.raises(BuildPlanError, match=message):
        make_plan('2.1.2', torch_cuda, [H100], {'FORCE_CUDA': '1'}, nvcc)


def test_plan_and_check_on_this_machine():
    """The command as setup_env.sh runs it: shell assignments here, and the ops check."""
    plan = subprocess.run([sys.executable, tool('mmcv_build.py'), 'plan'], capture_output=True,
                          text=True, env={'PATH': '/usr/bin:/bin', 'FORCE_CUDA': '0'})
    assert plan.returncode == 0, plan.stderr
    import torch
    assert f"MMCV_KEY=torch{torch.__version__}-cpu" in plan.stdout.replace("'", '')
    check = subprocess.run([sys.executable, tool('mmcv_build.py'), 'check'],
                           capture_output=True, text=True)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    assert check.returncode == 0 and f'mmcv.ops.nms runs on {device}' in check.stdout
