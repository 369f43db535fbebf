"""What every tool shares: a quiet start, and a known problem as one line (``--debug``: the
traceback); the checks before a run report every problem at once."""
from __future__ import annotations

import os
import runpy
import subprocess
import sys

import pytest
import torch

from mambaout_mm.engine.run_checks import Problems, check_mmcv_ops
from mambaout_mm.utils.errors import ConfigError, RunSetupError

from .tools_helpers import CPU_ONLY, OFFLINE, config, tool


def run_plain(*args: str, cwd, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """A tool as a user starts it: Python's default warning filters (unlike ``run_tool``)."""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONWARNINGS', 'MAMBAOUT_MM_DEBUG')}
    env.update(OFFLINE, **CPU_ONLY, **(env_extra or {}))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_tool_starts_without_the_pkg_resources_warning(tmp_path):
    """Loading a config that inherits mmdet:: configs imports pkg_resources (mmengine's resolver),
    which warns on import; the tools leave that noise out."""
    proc = run_plain(tool('check_dataset.py'),
                     config('mask_rcnn/mask_rcnn_mambaout_femto_shapes.py'), cwd=tmp_path)
    assert proc.returncode == 1 and 'CocoDataset for train is missing' in proc.stderr
    assert 'pkg_resources' not in proc.stderr and 'Warning' not in proc.stderr


@pytest.fixture
def truncated_checkpoint(official_femto, tmp_path):
    src, _ = official_femto
    truncated = tmp_path / 'mambaout_femto.pth'
    truncated.write_bytes(src.read_bytes()[:4096])
    return truncated


def test_a_known_error_is_one_line_and_debug_shows_its_traceback(truncated_checkpoint, tmp_path):
    args = (tool('convert_checkpoint.py'), str(truncated_checkpoint), str(tmp_path / 'out.pth'))
    proc = run_plain(*args, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # one line
    assert proc.stderr.startswith(f'error: {truncated_checkpoint} is a truncated or damaged '
                                  f'PyTorch checkpoint')
    for debug in (run_plain(*args, '--debug', cwd=tmp_path),
                  run_plain(*args, cwd=tmp_path, env_extra={'MAMBAOUT_MM_DEBUG': '1'})):
        assert debug.returncode == 1
        assert 'Traceback' in debug.stderr and 'CheckpointReadError' in debug.stderr


@pytest.mark.safe_globals  # before torch 2.4 torch and mmengine load with weights_only=False
def test_an_unsafe_checkpoint_is_one_line(tmp_path):
    unsafe = tmp_path / 'model.pth'
    torch.save({'state_dict': {}, 'runs': os.system}, unsafe)  # code a safe loader must refuse
    proc = run_plain(tool('convert_checkpoint.py'), str(unsafe), str(tmp_path / 'out.pth'),
                     cwd=tmp_path)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.startswith(f'error: {unsafe}: holds the object')


def test_problems_are_collected_and_reported_together():
    problems = Problems()
    with problems.check():
        raise RunSetupError('no GPU')
    with problems.check():
        pass
    with problems.check():
        raise ConfigError('unknown variant')
    with pytest.raises(RunSetupError) as raised:
        problems.raise_all()
    assert str(raised.value) == '2 problems stop this run:\n  1. no GPU\n  2. unknown variant'
    with pytest.raises(ZeroDivisionError), problems.check():  # a bug is not a problem to list
        raise ZeroDivisionError
    assert len(problems.found) == 2
    Problems().raise_all()  # nothing found, nothing raised
    nested = Problems()  # the problems of an inner collection count one by one
    with nested.check():
        problems.raise_all()
    assert nested.found == ['no GPU', 'unknown variant']


def test_mmcv_without_its_ops_names_both_ways_to_get_them(monkeypatch):
    check_mmcv_ops()  # the suite's mmcv has them
    import mmcv
    monkeypatch.setattr(mmcv, '__version__', '2.2.0')  # what mim picks for a new torch
    with pytest.raises(RunSetupError, match=r'mmcv 2\.2\.0 is installed, but this package supports '
                       r'mmcv<2\.2\.0,>=2\.1\.0'):
        check_mmcv_ops()
    monkeypatch.setattr(mmcv, '__version__', '2.1.0')
    monkeypatch.setitem(sys.modules, 'mmcv._ext', None)  # as a pip source build leaves mmcv
    with pytest.raises(RunSetupError, match=r'without its compiled ops.*mim install "mmcv==2\.1\.0"'
                       r'.*tools/setup_env\.sh'):
        check_mmcv_ops()


def run_in_process(name: str, *args: str, monkeypatch, capsys) -> tuple[int, str]:
    """``python tools/NAME ARGS`` in this process (quick: the imports are made once); its exit
    code and stderr."""
    monkeypatch.delenv('MAMBAOUT_MM_DEBUG', raising=False)
    monkeypatch.setattr(sys, 'argv', [tool(name), *args])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(tool(name), run_name='__main__')
    return exited.value.code, capsys.readouterr().err


@pytest.mark.parametrize('name,args', [
    ('train.py', []), ('test.py', ['x.pth']), ('check_dataset.py', []),
    ('export_onnx.py', ['--out', 'x.onnx']), ('get_flops.py', []), ('fp16_ranges.py', []),
    ('benchmark_deploy.py', []), ('demo.py', ['--out', 'x.png'])])
def test_every_tool_ends_a_missing_config_in_one_error_line(name, args, tmp_path, monkeypatch,
                                                            capsys):
    """The same exit everywhere: one ``error:`` line and exit 1 (2 is argparse's, for usage)."""
    monkeypatch.chdir(tmp_path)
    positional = ['image.jpg', 'missing.py'] if name == 'demo.py' else ['missing.py']
    code, err = run_in_process(name, *positional, *args, monkeypatch=monkeypatch, capsys=capsys)
    assert (code, err) == (1, 'error: config file not found: missing.py\n')


def test_debug_shows_the_traceback_of_a_tool_that_caught_its_own_errors(tmp_path):
    proc = run_plain(tool('export_onnx.py'), 'missing.py', '--out', 'x.onnx', '--debug',
                     cwd=tmp_path)
    assert proc.returncode == 1
    assert 'Traceback' in proc.stderr and 'RunSetupError: config file not found' in proc.stderr


def test_benchmark_deploy_names_a_missing_data_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = run_in_process('benchmark_deploy.py',
                               config('mask_rcnn/mask_rcnn_mambaout_femto_shapes.py'),
                               '--data', 'nowhere', monkeypatch=monkeypatch, capsys=capsys)
    assert code == 1 and err.count('\n') == 1
    assert err.startswith('error: No images in nowhere/train2017: make the shapes dataset with '
                          'tools/make_shapes.py, or give its folder with --data.')


@pytest.mark.parametrize('debug', [False, True])
def test_the_deployment_runtimes_errors_end_a_tool_as_one_line(debug, monkeypatch, capsys):
    """The tools over the deployment runtime (benchmark_deploy, export_onnx's check) exit on its
    errors as on the package's own: one line, exit 1; --debug re-raises."""
    from mambaout_deploy.manifest import ManifestError
    from mambaout_mm.utils import cli

    def main():
        raise ManifestError('manifest.json is version 9; re-export the model.')
    monkeypatch.setattr(sys, 'argv', ['tool.py', *(['--debug'] if debug else [])])
    if debug:
        with pytest.raises(ManifestError):
            cli.run(main)
        return
    with pytest.raises(SystemExit) as exited:
        cli.run(main)
    assert exited.value.code == 1
    assert capsys.readouterr().err == 'error: manifest.json is version 9; re-export the model.\n'


@pytest.mark.parametrize('version', ['2.0.1', '2.2.0'])
def test_the_mmcv_range_checked_is_the_packages_metadata(version, monkeypatch):
    """The pre-run check reads the supported mmcv range from the package's metadata (pyproject's
    `mim` extra), so the two cannot disagree: 2.0.1 was accepted when the check said >= 2.0.0rc4."""
    import importlib.metadata

    import mmcv
    from packaging.requirements import Requirement
    stated = next(Requirement(r) for r in importlib.metadata.requires('mambaout-mm')
                  if Requirement(r).name == 'mmcv')
    assert version not in stated.specifier and mmcv.__version__ in stated.specifier
    monkeypatch.setattr(mmcv, '__version__', version)
    with pytest.raises(RunSetupError, match=f'mmcv {version} is installed, but this package '
                                            f'supports mmcv{stated.specifier}'):
        check_mmcv_ops()
