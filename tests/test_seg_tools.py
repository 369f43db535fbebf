"""tools/train.py and tools/test.py (single scale and --tta) on the shapes UperNet."""
import json
import re
from pathlib import Path

import pytest

from mambaout_mm.datasets import make_ade_shapes

from .tools_helpers import (
    IN_PROCESS_LOADERS,
    checkpoint_meta,
    config,
    kill_after_first_checkpoint,
    run_tool,
    tool,
)

CONFIG = config('upernet/upernet_mambaout_femto_shapes.py')
FAST = ['train_cfg.val_interval=1000', 'default_hooks.checkpoint.interval=2',
        'default_hooks.checkpoint.max_keep_ckpts=-1', 'default_hooks.logger.interval=1',
        'train_dataloader.batch_size=2',
        *IN_PROCESS_LOADERS]


@pytest.fixture(scope='module')
def workspace(tmp_path_factory) -> Path:
    """A folder holding data/ade_shapes, as the shapes config expects, to run the tools in."""
    root = tmp_path_factory.mktemp('seg')
    make_ade_shapes(root / 'data' / 'ade_shapes', num_train=6, num_val=3)
    return root


def train(workspace: Path, work_dir: str, iters: int, *extra: str):
    return run_tool(tool('train.py'), CONFIG, '--work-dir', work_dir, *extra, '--cfg-options',
                    f'train_cfg.max_iters={iters}', *FAST, cwd=workspace)


@pytest.fixture(scope='module')
def trained(workspace) -> Path:
    train(workspace, 'work_dirs/full', 4)
    return workspace / 'work_dirs' / 'full'


@pytest.fixture(scope='module')
def tested(workspace, trained) -> Path:
    """tools/test.py single-scale (drawing pictures and writing label maps) and with --tta."""
    for extra in (['--show-dir', 'work_dirs/test/show', '--out', 'work_dirs/test/pred'],
                  ['--tta']):
        run_tool(tool('test.py'), CONFIG, str(trained / 'iter_4.pth'), '--work-dir',
                 'work_dirs/test', *extra, '--cfg-options', *FAST, cwd=workspace)
    return workspace / 'work_dirs' / 'test'


def test_train_then_single_and_multi_scale_test(trained, tested):
    assert checkpoint_meta(trained / 'iter_4.pth')['iter'] == 4
    single = json.loads((tested / 'test_metrics.json').read_text())
    multi = json.loads((tested / 'test_metrics_tta.json').read_text())
    assert not single['tta'] and multi['tta']
    for result in (single, multi):
        assert 0 <= result['metrics']['mIoU'] <= 100
        assert {'aAcc', 'mIoU', 'mAcc'} <= set(result['metrics'])


def test_show_dir_and_out_write_pictures_and_label_maps(tested):
    assert len(list((tested / 'show').rglob('*.png'))) == 3
    assert len(list((tested / 'pred').glob('*.png'))) == 3


def test_interrupted_training_resumes_to_the_same_iteration(workspace, trained):
    work_dir = workspace / 'work_dirs' / 'interrupted'
    kill_after_first_checkpoint(tool('train.py'), CONFIG, '--work-dir', str(work_dir),
                                '--cfg-options', 'train_cfg.max_iters=10', *FAST,
                                work_dir=work_dir, cwd=workspace)
    assert (work_dir / 'iter_2.pth').exists() and not (work_dir / 'iter_10.pth').exists()
    resumed = train(workspace, str(work_dir), 10, '--resume')
    resumed_at = re.search(r'resumed epoch: \d+, iter: (\d+)', resumed.stdout + resumed.stderr)
    assert resumed_at and 2 <= int(resumed_at.group(1)) < 10
    assert checkpoint_meta(work_dir / 'iter_10.pth')['iter'] == 10


def test_report_reads_single_and_multi_scale(workspace, tested):
    single = json.loads((tested / 'test_metrics.json').read_text())['metrics']['mIoU']
    multi = json.loads((tested / 'test_metrics_tta.json').read_text())['metrics']['mIoU']
    proc = run_tool(tool('report.py'), str(tested), '--format', 'csv', '--no-macs',
                    cwd=workspace)
    ours = next(line for line in proc.stdout.splitlines() if str(tested) in line).split(',')
    assert f'{single:.1f}' in ours and f'{multi:.1f}' in ours
