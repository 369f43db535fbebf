"""The head families beyond the paper through the tools, on a CPU: each family's femto config
(every ``configs/FAMILY/*femto*.py`` whose family derives from one toolbox config: found, not
listed) trains two iterations with tools/train.py, evaluates with tools/test.py (the metrics its
evaluators report: box AP, mask AP, PQ or mIoU), draws with tools/demo.py, and trains in two
gloo processes without ``find_unused_parameters``."""
from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config
from PIL import Image

from mambaout_mm.datasets import make_ade_shapes, make_coco_shapes
from mambaout_mm.evaluation.heads import _leaves, _plain, config_metrics, toolbox_base

from .tools_helpers import CPU_ONLY, IN_PROCESS_LOADERS, REPO, checkpoint_meta, run_tool, tool

FEMTO = sorted(p for p in (REPO / 'configs').glob('*/*femto*.py') if toolbox_base(p))


def ids(path: Path) -> str:
    return f'{path.parent.name}/{path.name}'


@pytest.fixture(scope='module')
def workspace(tmp_path_factory) -> Path:
    """data/coco_shapes and data/ade_shapes, as the femto configs expect: 4 training images."""
    root = tmp_path_factory.mktemp('heads')
    make_coco_shapes(root / 'data' / 'coco_shapes', num_train=4, num_val=2)
    make_ade_shapes(root / 'data' / 'ade_shapes', num_train=4, num_val=2)
    return root


def two_iterations(cfg: Config, per_process: int = 2) -> list[str]:
    """--cfg-options for two training iterations of the 4 images, a checkpoint at the end, the
    loaders in the process, and every score threshold at 0 (a model trained for two iterations
    may score everything below mmdet's 0.05, and COCO evaluation would then see nothing)."""
    loop = (['train_cfg.max_epochs=1', f'train_dataloader.batch_size={per_process}']
            if 'max_epochs' in cfg.train_cfg else
            ['train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'train_dataloader.batch_size=2'])
    thresholds = [f'model.{path}=0.0' for path, _ in _leaves(_plain(cfg.model.to_dict()))
                  if path.endswith('score_thr')]
    return [*loop, 'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1',
            *thresholds, *IN_PROCESS_LOADERS]


def last_checkpoint(work_dir: Path) -> Path:
    return Path((work_dir / 'last_checkpoint').read_text().strip())


@pytest.mark.parametrize('path', FEMTO, ids=ids)
def test_femto_trains_evaluates_and_draws(workspace, path):
    cfg = Config.fromfile(path)
    work_dir = workspace / 'work_dirs' / path.parent.name / path.stem
    run_tool(tool('train.py'), str(path), '--work-dir', str(work_dir), '--device', 'cpu',
             '--cfg-options', *two_iterations(cfg), cwd=workspace)
    checkpoint = last_checkpoint(work_dir)
    assert checkpoint_meta(checkpoint)['iter'] == 2

    run_tool(tool('test.py'), str(path), str(checkpoint), '--work-dir', str(work_dir / 'test'),
             '--cfg-options', *two_iterations(cfg), cwd=workspace)
    metrics = json.loads((work_dir / 'test' / 'test_metrics.json').read_text())['metrics']
    expected = [m for m in config_metrics(cfg) if not m.tta]
    assert expected and all(m.key in metrics for m in expected), (expected, sorted(metrics))
    assert all(0 <= metrics[m.key] * m.scale <= 100 for m in expected)

    detection = cfg.default_scope == 'mmdet'
    images = workspace / 'data' / ('coco_shapes/val2017' if detection
                                   else 'ade_shapes/images/validation')
    out = work_dir / 'demo.png'
    run_tool(tool('demo.py'), str(images), str(path), str(checkpoint), '--out', str(out),
             '--num', '1', *(['--score-thr', '0.0'] if detection else []), cwd=workspace)
    with Image.open(out) as picture:
        assert picture.format == 'PNG' and picture.width > 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.parametrize('path', FEMTO, ids=ids)
def test_femto_trains_in_two_processes_without_find_unused_parameters(workspace, path):
    """DDP (gloo) fails at the second iteration when a parameter got no gradient in the first:
    every parameter of the model takes part in the loss."""
    cfg = Config.fromfile(path)
    assert not cfg.get('model_wrapper_cfg', {}).get('find_unused_parameters')
    assert not cfg.get('find_unused_parameters')
    work_dir = workspace / 'work_dirs' / 'ddp' / path.parent.name / path.stem
    env = dict(os.environ, PYTHON=sys.executable, PYTHONWARNINGS='ignore',
               PORT=str(free_port()), **CPU_ONLY)
    proc = subprocess.run(
        ['bash', tool('dist_train.sh'), str(path), '2', '--work-dir', str(work_dir),
         '--cfg-options', *two_iterations(cfg, per_process=1)],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert 'Distributed training: True' in log
    assert checkpoint_meta(last_checkpoint(work_dir))['iter'] == 2


@pytest.mark.slow  # half a minute to a minute each on 2 shared cores
@pytest.mark.parametrize('path', FEMTO, ids=ids)
def test_the_toolboxs_own_train_py_takes_the_config(workspace, path):
    """``mim train`` runs mmdet's or mmseg's own tools/train.py: it reads our config as it is
    (custom_imports registers the backbone) and trains it."""
    cfg = Config.fromfile(path)
    package = cfg.default_scope
    train = Path(importlib.util.find_spec(package).origin).parent / '.mim' / 'tools' / 'train.py'
    work_dir = workspace / 'work_dirs' / 'toolbox' / path.parent.name / path.stem
    run_tool(str(train), str(path), '--work-dir', str(work_dir), '--cfg-options',
             *two_iterations(cfg), cwd=workspace)
    assert checkpoint_meta(last_checkpoint(work_dir))['iter'] == 2
