"""tools/train.py and tools/test.py on the shapes Mask R-CNN, through the real mmengine Runner."""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mambaout_mm.datasets import make_coco_shapes

from .tools_helpers import (IN_PROCESS_LOADERS, checkpoint_meta, config,
                            kill_after_first_checkpoint, run_tool, tool)

CONFIG = config('mask_rcnn/mambaout_femto_shapes.py')
# 8 training images, batch 4: 2 iterations an epoch.
FAST = ['train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=-1', 'default_hooks.logger.interval=1',
        *IN_PROCESS_LOADERS]


@pytest.fixture(scope='module')
def workspace(tmp_path_factory) -> Path:
    """A folder holding data/coco_shapes, as the shapes config expects, to run the tools in."""
    root = tmp_path_factory.mktemp('det')
    make_coco_shapes(root / 'data' / 'coco_shapes', num_train=8, num_val=4)
    return root


def train(workspace: Path, work_dir: str, epochs: int, *extra: str):
    return run_tool(tool('train.py'), CONFIG, '--work-dir', work_dir, *extra, '--cfg-options',
                    f'train_cfg.max_epochs={epochs}', *FAST, cwd=workspace)


@pytest.fixture(scope='module')
def trained(workspace) -> Path:
    train(workspace, 'work_dirs/full', 3)
    return workspace / 'work_dirs' / 'full'


def test_train_then_test_with_predictions_drawn(workspace, trained):
    meta = checkpoint_meta(trained / 'epoch_3.pth')
    assert (meta['epoch'], meta['iter']) == (3, 6)

    run_tool(tool('test.py'), CONFIG, str(trained / 'epoch_3.pth'), '--work-dir',
             'work_dirs/test', '--out', 'work_dirs/test/preds.pkl', '--show-dir', 'vis',
             '--cfg-options', *FAST, cwd=workspace)
    result = json.loads((workspace / 'work_dirs/test/test_metrics.json').read_text())
    assert {'coco/bbox_mAP', 'coco/segm_mAP'} <= set(result['metrics'])
    assert all(0 <= result['metrics'][k] <= 1 for k in ('coco/bbox_mAP', 'coco/segm_mAP'))
    with open(workspace / 'work_dirs/test/preds.pkl', 'rb') as f:
        assert len(pickle.load(f)) == 4
    assert len(list((workspace / 'work_dirs/test').glob('*/vis/*.jpg'))) == 4


def test_interrupted_training_resumes_to_the_same_iteration(workspace, trained):
    work_dir = workspace / 'work_dirs' / 'interrupted'
    kill_after_first_checkpoint(tool('train.py'), CONFIG, '--work-dir', str(work_dir),
                                '--cfg-options', 'train_cfg.max_epochs=3', *FAST,
                                work_dir=work_dir, cwd=workspace)
    assert not (work_dir / 'epoch_3.pth').exists(), 'the run was not interrupted'
    assert (work_dir / 'epoch_1.pth').exists()

    resumed = train(workspace, str(work_dir), 3, '--resume')
    assert 'resumed epoch: 1' in resumed.stdout + resumed.stderr
    final = checkpoint_meta(work_dir / 'epoch_3.pth')
    uninterrupted = checkpoint_meta(trained / 'epoch_3.pth')
    assert (final['epoch'], final['iter']) == (uninterrupted['epoch'], uninterrupted['iter'])


def test_two_process_cpu_training_with_the_pytorch_launcher(workspace):
    env = dict(os.environ, PYTHON=sys.executable, PYTHONWARNINGS='ignore', PORT='29533')
    proc = subprocess.run(
        ['bash', tool('dist_train.sh'), CONFIG, '2', '--work-dir', 'work_dirs/dist',
         '--cfg-options', 'train_cfg.max_epochs=1', 'train_dataloader.batch_size=2', *FAST],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert 'Distributed training: True' in log
    meta = checkpoint_meta(workspace / 'work_dirs/dist/epoch_1.pth')
    assert meta['iter'] == 2  # 8 images / (2 processes x 2 images)


@pytest.mark.skipif(torch.cuda.is_available(), reason='tests the CPU path')
def test_amp_on_a_cpu_trains_in_bfloat16(workspace):
    proc = train(workspace, 'work_dirs/amp', 1, '--amp')
    log = proc.stdout + proc.stderr
    assert 'bfloat16 autocast of backbone, neck (CPUAutocastOptimWrapper)' in log
    assert checkpoint_meta(workspace / 'work_dirs/amp/epoch_1.pth')['iter'] == 2


def test_missing_dataset_fails_with_the_layout(tmp_path):
    proc = run_tool(tool('train.py'), config('mask_rcnn/mambaout_tiny_1x.py'), check=False,
                    cwd=tmp_path)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert 'Pretrained weights not found: checkpoints/mambaout_tiny.pth' in proc.stderr
    proc = run_tool(tool('train.py'), config('mask_rcnn/mambaout_tiny_1x.py'), '--cfg-options',
                    'model.backbone.init_cfg=None', check=False, cwd=tmp_path)
    assert 'data/coco/annotations/instances_train2017.json' in proc.stderr
    assert 'Expected layout: COCO 2017' in proc.stderr


def test_report_reads_the_test_run(workspace, trained):
    work_dir = workspace / 'work_dirs' / 'report'
    run_tool(tool('test.py'), CONFIG, str(trained / 'epoch_3.pth'), '--work-dir', str(work_dir),
             '--cfg-options', *FAST, cwd=workspace)
    metrics = json.loads((work_dir / 'test_metrics.json').read_text())['metrics']
    proc = run_tool(tool('report.py'), str(work_dir), '--format', 'csv', cwd=workspace)
    ours = next(line for line in proc.stdout.splitlines() if str(work_dir) in line)
    assert f"{100 * metrics['coco/bbox_mAP']:.1f}" in ours.split(',')
    assert 'MambaOut-Tiny' in proc.stdout  # the paper's rows follow ours
