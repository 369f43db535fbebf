"""How tools/setup_env.sh builds mmcv 2.1.0 for the torch in its environment: with CUDA ops or
without, for which GPU architectures, cached under which key, and the check that proves the ops
run on this machine's device.

    python tools/mmcv_build.py plan    # shell assignments: MMCV_FORCE_CUDA, MMCV_ARCHS, MMCV_KEY
    python tools/mmcv_build.py check   # mmcv.ops.nms on the device torch sees; exit 1 if missing

Only torch is needed (this runs before mmcv exists). The environment decides, as in mmcv's own
setup.py: ``FORCE_CUDA=1`` builds the CUDA ops, ``FORCE_CUDA=0`` builds CPU ops only, unset means
CUDA ops exactly when torch sees a GPU. ``TORCH_CUDA_ARCH_LIST`` picks the architectures (default:
those of the visible GPUs). The nvcc found (``$CUDA_HOME/bin/nvcc``, else on ``PATH``) must have
the CUDA major version that torch was built with. A toolkit of nvcc and the runtime alone lacks the
math libraries' headers (cuSPARSE, cuBLAS) that torch's CUDA headers include: the build takes them
from the nvidia-* wheels torch was installed with (``MMCV_CPATH``, searched after the toolkit's).
"""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


class BuildPlanError(RuntimeError):
    """The build asked for cannot be made here; the message says what is missing."""


@dataclass(frozen=True)
class Plan:
    cuda: bool
    archs: str       # TORCH_CUDA_ARCH_LIST for the build ('' for a CPU build)
    key: str         # cache key: torch version, CPU or CUDA version, architectures
    includes: list[str] = field(default_factory=list)  # header folders for CPATH (CUDA builds)

    def shell(self) -> str:
        return '\n'.join(f'{name}={shlex.quote(value)}' for name, value in (
            ('MMCV_FORCE_CUDA', '1' if self.cuda else '0'), ('MMCV_ARCHS', self.archs),
            ('MMCV_KEY', self.key), ('MMCV_CPATH', os.pathsep.join(self.includes))))


def nvcc_version(cuda_home: str | None) -> str | None:
    """``'13.0'`` from ``nvcc --version``, or ``None`` if there is no nvcc."""
    nvcc = os.path.join(cuda_home, 'bin', 'nvcc') if cuda_home else shutil.which('nvcc')
    if not nvcc or not os.path.exists(nvcc):
        return None
    out = subprocess.run([nvcc, '--version'], capture_output=True, text=True).stdout
    found = re.search(r'release (\d+\.\d+)', out)
    return found.group(1) if found else None


def cuda_wheel_includes() -> list[str]:
    """The header folders of the installed nvidia-* wheels (``nvidia/cu13/include``,
    ``nvidia/cusparse/include``, ...); none where torch did not come with them."""
    spec = importlib.util.find_spec('nvidia')
    roots = spec.submodule_search_locations if spec and spec.submodule_search_locations else []
    return sorted(str(p) for root in roots for p in Path(root).glob('*/include') if p.is_dir())


def make_plan(torch_version: str, torch_cuda: str | None, gpu_capabilities: list[tuple[int, int]],
              env: dict[str, str], nvcc: str | None, includes: list[str] = ()) -> Plan:
    """The build for this torch (``torch.__version__``, ``torch.version.cuda``), the visible GPUs'
    compute capabilities, the environment, the nvcc version found and the nvidia-* wheels'
    header folders."""
    force = env.get('FORCE_CUDA', '').strip()
    if force not in ('', '0', '1'):
        raise BuildPlanError(f'FORCE_CUDA must be 0, 1 or unset, got {force!r}.')
    cuda = force == '1' or (force == '' and bool(gpu_capabilities))
    if not cuda:
        return Plan(False, '', f'torch{torch_version}-cpu')
    if not torch_cuda:
        raise BuildPlanError(
            f'CUDA ops asked for (FORCE_CUDA=1), but torch {torch_version} is a CPU-only build. '
            f'Install a CUDA build of torch (TORCH_INDEX_URL, see docs/install.md) or set '
            f'FORCE_CUDA=0.')
    if nvcc is None:
        raise BuildPlanError(
            f'CUDA ops need nvcc {torch_cuda.split(".")[0]}.x (torch {torch_version} was built '
            f'with CUDA {torch_cuda}), and none was found: install the CUDA toolkit {torch_cuda} '
            f'and set CUDA_HOME (or put its bin/ on PATH), or set FORCE_CUDA=0 for CPU ops only.')
    if nvcc.split('.')[0] != torch_cuda.split('.')[0]:
        raise BuildPlanError(
            f'nvcc is CUDA {nvcc} but torch {torch_version} was built with CUDA {torch_cuda}; the '
            f'major versions must match. Point CUDA_HOME at a CUDA {torch_cuda} toolkit, or '
            f'install the torch build for CUDA {nvcc} (TORCH_INDEX_URL).')
    archs = env.get('TORCH_CUDA_ARCH_LIST', '').strip()
    if not archs:
        if not gpu_capabilities:
            raise BuildPlanError(
                'CUDA ops asked for (FORCE_CUDA=1) on a machine where torch sees no GPU: say which '
                'GPUs to build for, e.g. TORCH_CUDA_ARCH_LIST="8.0;9.0" (A100, H100).')
        archs = ';'.join(sorted({f'{major}.{minor}' for major, minor in gpu_capabilities}))
    arch_key = '-'.join(re.sub(r'[^0-9A-Za-z.+]', '', a) for a in re.split(r'[;\s]+', archs) if a)
    return Plan(True, archs, f'torch{torch_version}-cuda{nvcc}-sm{arch_key}', list(includes))


def plan_here() -> Plan:
    import torch
    capabilities = ([torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())]
                    if torch.cuda.is_available() else [])
    return make_plan(torch.__version__, torch.version.cuda, capabilities, dict(os.environ),
                     nvcc_version(os.environ.get('CUDA_HOME')), cuda_wheel_includes())


def check_ops() -> str:
    """Run ``mmcv.ops.nms`` on the device torch sees; what ran, or :class:`BuildPlanError`."""
    import torch
    from mmcv.ops import nms
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]],
                         device=device)
    scores = torch.tensor([0.9, 0.8, 0.7], device=device)
    try:
        _, keep = nms(boxes, scores, iou_threshold=0.5)
    except RuntimeError as err:
        raise BuildPlanError(f'mmcv.ops.nms does not run on {device} ({err}); this mmcv was built '
                             f'without {device} ops.') from None
    if keep.tolist() != [0, 2]:
        raise BuildPlanError(f'mmcv.ops.nms on {device} kept {keep.tolist()}, expected [0, 2].')
    return f'mmcv.ops.nms runs on {device}'


def main(argv: list[str]) -> int:
    if argv[1:] not in (['plan'], ['check']):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(plan_here().shell() if argv[1] == 'plan' else check_ops())
    except BuildPlanError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
