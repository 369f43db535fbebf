"""The package as a user installs it: a wheel in an environment of its own, used from outside the
checkout (configs through ``mambaout_mm::``, the tools through ``python -m mambaout_mm``)."""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from .tools_helpers import CPU_ONLY, OFFLINE, REPO

IGNORED = shutil.ignore_patterns('.git', '.venv*', 'work_dirs', 'data', 'checkpoints', 'build',
                                 '*.egg-info', '__pycache__', '.pytest_cache')


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600,
                          **kwargs)
    assert proc.returncode == 0, f'{args}: {proc.stdout[-2000:]}\n{proc.stderr[-4000:]}'
    return proc


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    """The wheel pip builds from a copy of the checkout (the checkout itself is left as it is)."""
    root = tmp_path_factory.mktemp('wheel')
    source = root / 'source'
    shutil.copytree(REPO, source, symlinks=True, ignore=IGNORED)
    run(sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index',
        '-q', '-w', root / 'dist', source)
    return next((root / 'dist').glob('mambaout_mm-*.whl'))


def new_venv(root: Path) -> tuple[Path, Path]:
    """A throwaway venv with the suite's torch, mmcv, mmdet, ... behind it; its python and its
    site-packages."""
    run(sys.executable, '-m', 'venv', '--without-pip', root / 'venv')
    python = root / 'venv' / 'bin' / 'python'
    purelib = Path(run(python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
                   .stdout.strip())
    # after the venv's own site-packages: the suite's (not processed as a site dir, so the
    # checkout's editable install there is not importable)
    (purelib / 'suite_packages.pth').write_text('\n'.join(site.getsitepackages()) + '\n')
    return python, purelib


@pytest.fixture(scope='module')
def environment(wheel, tmp_path_factory) -> tuple[Path, Path]:
    """A throwaway venv holding the wheel; its python and its site-packages."""
    python, purelib = new_venv(tmp_path_factory.mktemp('env'))
    run(sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--no-index', '--target',
        purelib, wheel)
    return python, purelib


@pytest.fixture(scope='module')
def editable_environment(wheel, tmp_path_factory) -> tuple[Path, Path]:
    """A throwaway venv where the checkout's copy is installed as ``pip install -v -e .`` does
    (through setup.py); its python and the copy's package folder."""
    source = wheel.parents[1] / 'source'
    python, _ = new_venv(tmp_path_factory.mktemp('editable'))
    run(sys.executable, '-m', 'pip', '--python', python, 'install', '-q', '--no-deps',
        '--no-build-isolation', '--no-index', '-e', source)
    return python, source / 'mambaout_mm'


@pytest.fixture(params=['wheel', 'editable'])
def installed(request) -> tuple[Path, Path]:
    """The package as each install the README offers leaves it: the python, and the package's
    folder (the wheel's in site-packages, or the editable install's in the checkout)."""
    if request.param == 'wheel':
        python, purelib = request.getfixturevalue('environment')
        return python, purelib / 'mambaout_mm'
    return request.getfixturevalue('editable_environment')


def user_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    return dict(env, **OFFLINE, **CPU_ONLY)


def test_the_wheel_declares_what_the_code_imports_and_leaves_mmcv_to_mim(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith('.dist-info/METADATA')))
    requires = re.findall(r'^Requires-Dist: (.+)$', metadata.decode(), flags=re.M)
    required = {re.split(r'[<>=!~ ;\[]', r)[0].lower() for r in requires if 'extra ==' not in r}
    assert {'torch', 'numpy', 'mmengine', 'safetensors'} <= required
    assert not required & {'mmcv', 'timm', 'mmdet', 'mmsegmentation'}  # extras, not requirements
    assert any(r.startswith('mmcv') and 'extra == "mim"' in r for r in requires)
    # the configs and tools travel inside the package, where mmengine and mim look for them
    configs = sorted(p.relative_to(REPO / 'configs').as_posix()
                     for p in (REPO / 'configs').rglob('*.py'))
    packaged = sorted(n.removeprefix('mambaout_mm/.mim/configs/') for n in names
                      if n.startswith('mambaout_mm/.mim/configs/') and n.endswith('.py'))
    assert packaged == configs
    assert {'mambaout_mm/.mim/tools/train.py', 'mambaout_mm/.mim/model-index.yml'} <= set(names)
    metafiles = {f'mambaout_mm/.mim/{p.relative_to(REPO).as_posix()}'
                 for p in (REPO / 'configs').glob('*/metafile.yml')}
    assert metafiles and metafiles <= set(names)
    # a wheel's top-level names are the packages, led by the one mmengine's `mambaout_mm::` and
    # mim look for .mim/ in (its first line; setuptools would sort mambaout_deploy first)
    with zipfile.ZipFile(wheel) as archive:
        top_level = archive.read(next(n for n in names if n.endswith('.dist-info/top_level.txt')))
    assert top_level.decode().split() == ['mambaout_mm', 'mambaout_deploy']


def test_an_install_loads_packaged_configs_outside_the_checkout(installed, tmp_path):
    """mmengine's two ways to a packaged config: ``get_config('PACKAGE::PATH')`` and a config of
    the user's that inherits one (``_base_``), built in mmdet's registry."""
    python, package = installed
    (tmp_path / 'mine.py').write_text("_base_ = 'mambaout_mm::mask_rcnn/mambaout_tiny_1x.py'\n"
                                      "model = dict(backbone=dict(drop_path_rate=0.1))\n")
    script = (
        'import json, mambaout_mm\n'
        'from mmengine.config import Config\n'
        'from mmengine.hub import get_config\n'
        'from mmengine.registry import init_default_scope\n'
        'from mmdet.registry import MODELS\n'
        "packaged = get_config('mambaout_mm::mask_rcnn/mambaout_tiny_1x.py')\n"
        "mine = Config.fromfile('mine.py')\n"
        "init_default_scope('mmdet')\n"
        'model = MODELS.build(mine.model)\n'
        'print(json.dumps(dict(package=mambaout_mm.__file__, config=packaged.filename,\n'
        '    model=type(model).__name__, backbone=type(model.backbone).__name__,\n'
        '    arch=packaged.model.backbone.arch, drop_path=mine.model.backbone.drop_path_rate,\n'
        '    channels=[model.backbone.dims[i] for i in model.backbone.out_indices],\n'
        '    neck=list(model.neck.in_channels))))\n')
    found = json.loads(run(python, '-c', script, cwd=tmp_path, env=user_env()).stdout
                       .strip().splitlines()[-1])
    assert Path(found['package']).parent == package  # the install's copy, not the checkout
    assert Path(found['config']).is_relative_to(package / '.mim' / 'configs')
    assert found['model'] == 'MaskRCNN'  # its own mmdet:: base configs resolved too
    assert found['backbone'] == 'MambaOutBackbone' and found['arch'] == 'tiny'
    assert found['drop_path'] == 0.1  # the user's override of the inherited config
    assert found['channels'] == found['neck']


def test_an_installed_wheel_runs_the_tools_on_packaged_configs(environment, tmp_path):
    python, purelib = environment
    listed = subprocess.run([str(python), '-m', 'mambaout_mm'], capture_output=True, text=True,
                            cwd=tmp_path, env=user_env())
    assert listed.returncode != 0 and 'train' in listed.stderr and 'export_onnx' in listed.stderr
    proc = subprocess.run([str(python), '-m', 'mambaout_mm', 'train',
                           'mambaout_mm::mask_rcnn/mambaout_tiny_1x.py', '--device', 'cpu'],
                          capture_output=True, text=True, cwd=tmp_path, env=user_env(),
                          timeout=300)
    # the config resolves in the wheel; what stops the run is what this machine lacks
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert 'error: 2 problems stop this run' in proc.stderr
    assert 'Could not download the checkpoint https://github.com/yuweihao' in proc.stderr
    assert 'data/coco/annotations/instances_train2017.json' in proc.stderr
    assert not list(tmp_path.glob('work_dirs/*/*.log.json'))


def test_mim_search_lists_the_installed_index(installed, tmp_path):
    """``mim search`` reads the installed package's ``.mim/model-index.yml``, as mmdet's."""
    python, package = installed
    index = package / '.mim' / 'model-index.yml'
    names = sorted(model['Name'] for metafile in yaml.safe_load(index.read_text())['Import']
                   for model in yaml.safe_load((index.parent / metafile).read_text())['Models'])
    search = run(python, '-m', 'mim', 'search', 'mambaout_mm', '--valid-config', cwd=tmp_path,
                 env=user_env())
    assert sorted(ast.literal_eval(search.stdout.strip().splitlines()[-1])) == names


def test_mim_train_finds_the_installed_wheels_config_and_tool(environment, tmp_path):
    """``mim train`` runs the wheel's ``.mim/tools/train.py`` on its ``.mim/configs`` one, as
    mmdet's (tests/test_model_index.py: the same in the checkout's editable install)."""
    python, purelib = environment
    train = subprocess.run([str(python), '-m', 'mim', 'train', 'mambaout_mm', 'mambaout_tiny_1x.py',
                            '--gpus', '0', '--work-dir', str(tmp_path / 'work')],
                           capture_output=True, text=True, cwd=tmp_path, env=user_env(),
                           timeout=600)
    package = Path(os.path.realpath(purelib / 'mambaout_mm'))
    config = package / '.mim' / 'configs' / 'mask_rcnn' / 'mambaout_tiny_1x.py'
    assert f'will use {config} instead' in train.stdout, train.stdout[-2000:] + train.stderr[-3000:]
    assert f'.mim/tools/train.py {config}' in train.stdout
    # the packaged tool ran on it and stops on what this machine lacks (GPU, data, network)
    assert train.returncode != 0 and 'problems stop this run' in train.stderr
    assert 'download/model/mambaout_tiny.pth' in train.stderr


def test_the_deployment_runtime_wheel_holds_it_alone_and_needs_no_torch(wheel, tmp_path):
    source = wheel.parents[1] / 'source'
    run(sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index',
        '-q', '-w', tmp_path, source / 'packaging' / 'mambaout-deploy')
    runtime = next(tmp_path.glob('mambaout_deploy-*.whl'))
    with zipfile.ZipFile(runtime) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith('.dist-info/METADATA')))
    modules = {n for n in names if n.endswith('.py')}
    assert modules == {p.relative_to(REPO).as_posix() for p in (REPO / 'mambaout_deploy').rglob(
        '*.py')}  # its subpackages (the backends) too
    requires = re.findall(r'^Requires-Dist: (.+)$', metadata.decode(), flags=re.M)
    required = {re.split(r'[<>=!~ ;\[]', r)[0].lower() for r in requires if 'extra ==' not in r}
    assert {'numpy', 'onnxruntime'} <= required
    assert not required & {'torch', 'mmcv', 'mmdet', 'mmsegmentation', 'mmengine'}
    # the main wheel ships it too, for users of the whole toolbox
    with zipfile.ZipFile(wheel) as archive:
        assert 'mambaout_deploy/rcnn.py' in archive.namelist()
