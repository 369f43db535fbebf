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
from mambaout_mm.utils import cpu_support

from .tools_helpers import (
    CPU_ONLY,
    IN_PROCESS_LOADERS,
    KEEP_LOW_SCORES,
    checkpoint_meta,
    config,
    kill_after_first_checkpoint,
    run_tool,
    tool,
)

CONFIG = config('mask_rcnn/mask_rcnn_mambaout_femto_shapes.py')
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


@pytest.fixture(scope='module')
def tested(workspace, trained) -> Path:
    """tools/test.py on the last checkpoint, saving predictions and drawing them."""
    run_tool(tool('test.py'), CONFIG, str(trained / 'epoch_3.pth'), '--work-dir',
             'work_dirs/test', '--out', 'work_dirs/test/preds.pkl', '--show-dir', 'vis',
             '--cfg-options', *KEEP_LOW_SCORES, *FAST, cwd=workspace)
    return workspace / 'work_dirs' / 'test'


def test_train_then_test_with_predictions_drawn(trained, tested):
    meta = checkpoint_meta(trained / 'epoch_3.pth')
    assert (meta['epoch'], meta['iter']) == (3, 6)
    result = json.loads((tested / 'test_metrics.json').read_text())
    assert {'coco/bbox_mAP', 'coco/segm_mAP'} <= set(result['metrics'])
    assert all(0 <= result['metrics'][k] <= 1 for k in ('coco/bbox_mAP', 'coco/segm_mAP'))
    with open(tested / 'preds.pkl', 'rb') as f:
        assert len(pickle.load(f)) == 4
    assert len(list(tested.glob('*/vis/*.jpg'))) == 4
    # the run was guarded against a diverging loss (tools/train.py adds the hook)
    dumped = (trained / 'mask_rcnn_mambaout_femto_shapes.py').read_text()
    assert "type='NonFiniteLossHook'" in dumped


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
    env = dict(os.environ, PYTHON=sys.executable, PYTHONWARNINGS='ignore', PORT='29533',
               **CPU_ONLY)
    proc = subprocess.run(
        ['bash', tool('dist_train.sh'), CONFIG, '2', '--work-dir', 'work_dirs/dist',
         '--cfg-options', 'train_cfg.max_epochs=1', 'train_dataloader.batch_size=2', *FAST],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert 'Distributed training: True' in log
    meta = checkpoint_meta(workspace / 'work_dirs/dist/epoch_1.pth')
    assert meta['iter'] == 2  # 8 images / (2 processes x 2 images)


def test_amp_on_a_cpu_trains_in_bfloat16_where_it_is_native(workspace):
    """bf16 autocast on AVX512-BF16/AMX; elsewhere fp32, and the log says why."""
    proc = train(workspace, 'work_dirs/amp', 1, '--amp')
    log = proc.stdout + proc.stderr
    if cpu_support.bf16_native():
        assert 'bfloat16 autocast of backbone, neck (CPUAutocastOptimWrapper)' in log
    else:
        assert 'Mixed precision: off, training in float32: no GPU, and ' in log
        assert log.count('Mixed precision:') == 1 and "type='CPUAutocastOptimWrapper'" not in log
    assert checkpoint_meta(workspace / 'work_dirs/amp/epoch_1.pth')['iter'] == 2


def test_every_problem_before_the_run_is_named_at_once(tmp_path):
    """Table 2's config on a machine without a GPU, offline, without COCO: one message says all."""
    proc = run_tool(tool('train.py'), config('mask_rcnn/mambaout_tiny_1x.py'), check=False,
                    cwd=tmp_path)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert 'error: 3 problems stop this run:' in proc.stderr
    assert 'This run asks for GPUs' in proc.stderr
    assert ('Could not download the checkpoint https://github.com/yuweihao/MambaOut/releases/'
            'download/model/mambaout_tiny.pth') in proc.stderr
    assert 'data/coco/annotations/instances_train2017.json' in proc.stderr
    assert 'Expected layout: COCO 2017' in proc.stderr
    # a local copy of the weights, on CPUs on purpose: only the data is left
    proc = run_tool(tool('train.py'), config('mask_rcnn/mambaout_tiny_1x.py'), '--device', 'cpu',
                    '--cfg-options', 'model.backbone.init_cfg=None', check=False, cwd=tmp_path)
    assert 'problems' not in proc.stderr and 'Traceback' not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: CocoDataset for train is missing')
    assert 'data/coco/annotations/instances_train2017.json' in last


@pytest.mark.parametrize('option,problem', [
    ('model.backbone.arch=tinyy', "Unknown MambaOut variant 'tinyy'"),
    ('model.backbone.out_indices=[0,4]', 'out_indices entries must be stage indices'),
    ('model.backbone.out_indice=[0,1]', "unexpected keyword argument 'out_indice'")])
def test_a_backbone_setting_that_cannot_be_built_is_one_line(workspace, option, problem):
    proc = run_tool(tool('train.py'), CONFIG, '--cfg-options', option, *FAST, check=False,
                    cwd=workspace)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: model.backbone:') and problem in last
    debug = run_tool(tool('train.py'), CONFIG, '--cfg-options', option, *FAST, '--debug',
                     check=False, cwd=workspace)
    assert debug.returncode != 0 and 'Traceback' in debug.stderr and problem in debug.stderr


def test_missing_mmcv_ops_name_both_ways_to_get_them(workspace, tmp_path):
    """mmcv without its compiled ops (as pip's source build leaves it): one line, two fixes."""
    (tmp_path / 'sitecustomize.py').write_text("import sys\nsys.modules['mmcv._ext'] = None\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), **CPU_ONLY)
    proc = subprocess.run([sys.executable, tool('train.py'), CONFIG], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert 'is installed without its compiled ops' in proc.stderr
    assert 'mim install "mmcv==2.1.0"' in proc.stderr and 'tools/setup_env.sh' in proc.stderr


@pytest.mark.parametrize('args', [[config('mask_rcnn/mambaout_tiny_1x.py')],
                                  [CONFIG, '--device', 'cuda'],
                                  [config('mask_rcnn/mambaout_tiny_1x.py'), '--launcher',
                                   'pytorch']])
def test_a_gpu_run_without_a_gpu_stops_and_says_why(tmp_path, args):
    proc = run_tool(tool('train.py'), *args, check=False, cwd=tmp_path)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert 'This run asks for GPUs' in proc.stderr and 'add --device cpu' in proc.stderr
    assert (f'built for CUDA {torch.version.cuda} and sees no GPU' if torch.version.cuda
            else 'is a CPU-only build') in proc.stderr


def test_report_reads_the_test_run(workspace, tested):
    metrics = json.loads((tested / 'test_metrics.json').read_text())['metrics']
    proc = run_tool(tool('report.py'), str(tested), '--format', 'csv', cwd=workspace)
    ours = next(line for line in proc.stdout.splitlines() if str(tested) in line)
    assert f"{100 * metrics['coco/bbox_mAP']:.1f}" in ours.split(',')
    assert 'MambaOut-Tiny' in proc.stdout  # the paper's rows follow ours


def test_resume_and_load_from_need_no_imagenet_weights(workspace, trained):
    """A run that continues from its own checkpoint on a machine without the Pretrained file."""
    config_file = workspace / 'pretrained_elsewhere.py'
    config_file.write_text(f"_base_ = {CONFIG!r}\nmodel = dict(backbone=dict(init_cfg=dict("
                           f"_delete_=True, type='Pretrained', "
                           f"checkpoint='checkpoints/not_here.pth')))\n")
    work_dir = workspace / 'work_dirs' / 'moved'
    work_dir.mkdir(parents=True)
    (work_dir / 'epoch_3.pth').write_bytes((trained / 'epoch_3.pth').read_bytes())
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_3.pth'))

    def run(*extra):
        return run_tool(tool('train.py'), str(config_file), '--work-dir', str(work_dir), *extra,
                        '--cfg-options', 'train_cfg.max_epochs=4', *FAST, cwd=workspace,
                        check=False)
    fresh = run()  # not resuming: the ImageNet weights are needed, and the error says so
    assert fresh.returncode != 0
    assert 'Pretrained weights not found: checkpoints/not_here.pth' in fresh.stderr
    assert 'Traceback' not in fresh.stderr
    resumed = run('--resume')
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-3000:]
    assert 'not loading the pretrained weights checkpoints/not_here.pth' in log
    assert checkpoint_meta(work_dir / 'epoch_4.pth')['iter'] == 8
    run_tool(tool('train.py'), str(config_file), '--work-dir', str(work_dir / 'ft'),
             '--cfg-options', f'load_from={trained / "epoch_3.pth"}', 'train_cfg.max_epochs=1',
             *FAST, cwd=workspace)
    assert checkpoint_meta(work_dir / 'ft' / 'epoch_1.pth')['iter'] == 2


def test_a_damaged_checkpoint_is_named_before_the_run(workspace, tmp_path):
    damaged = tmp_path / 'epoch_9.pth'
    damaged.write_bytes(b'<html>503 Service Unavailable</html>')
    for tool_args in ([tool('test.py'), CONFIG, str(damaged)],
                      [tool('train.py'), CONFIG, '--resume', str(damaged)]):
        proc = run_tool(*tool_args, '--cfg-options', *FAST, check=False, cwd=workspace)
        assert proc.returncode != 0 and 'Traceback' not in proc.stderr
        assert f'{damaged} is a text/HTML page' in proc.stderr


def test_ema_and_layer_decay_from_a_config(workspace):
    """The training options peers' recipes use: mmdet's EMAHook and lr decay of the backbone."""
    config_file = workspace / 'ema_decay.py'
    config_file.write_text(
        f"_base_ = {CONFIG!r}\n"
        "custom_hooks = [dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.01,\n"
        "                     update_buffers=True, priority=49)]\n"
        "optim_wrapper = dict(constructor='MambaOutLearningRateDecay',\n"
        "                     paramwise_cfg=dict(_delete_=True, decay_rate=0.8, num_layers=6))\n")
    run_tool(tool('train.py'), str(config_file), '--work-dir', 'work_dirs/ema', '--cfg-options',
             'train_cfg.max_epochs=1', *FAST, cwd=workspace)
    from mambaout_mm.weights import safe_load
    saved = safe_load.load(workspace / 'work_dirs/ema/epoch_1.pth')
    weights, averaged = saved['state_dict'], saved['ema_state_dict']
    key = 'backbone.stages.0.0.fc1.weight'
    assert not torch.equal(weights[key], averaged[f'module.{key}'])  # averaged over 2 steps
    lrs = [g['lr'] for g in saved['optimizer']['param_groups']]  # all at one warm-up factor
    assert min(lrs) / max(lrs) == pytest.approx(0.8 ** 7)  # the stem's decay, 7 layers below


def test_imagenet_weights_that_do_not_fit_the_variant_are_one_line(workspace, official_femto):
    """A femto checkpoint given to a kobe backbone (deeper stage 3): named, not a traceback."""
    path, _ = official_femto
    config_file = workspace / 'kobe_from_femto.py'
    config_file.write_text(f"_base_ = {CONFIG!r}\nmodel = dict(backbone=dict(arch='kobe', "
                           f"init_cfg=dict(_delete_=True, type='Pretrained', "
                           f"checkpoint={str(path)!r})))\n")
    proc = run_tool(tool('train.py'), str(config_file), '--work-dir', 'work_dirs/kobe',
                    '--cfg-options', *FAST, check=False, cwd=workspace)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and 'missing from the checkpoint: stages.2.9' in last
    assert 'femto' in last  # the variant the checkpoint looks like


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line a failed tool ends with (asserted: no traceback, no other)."""
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and errors[0] == proc.stderr.strip().splitlines()[-1]
    return errors[0]


def test_a_checkpoint_of_another_model_is_refused_by_test(workspace):
    """mmengine would load it with warnings and score randomly initialised weights, exit 0."""
    from mambaout_mm.utils.config import build_model, load_config
    other = workspace / 'kobe_mask_rcnn.pth'
    model = build_model(load_config(CONFIG, {'model.backbone.arch': 'kobe'}))
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, other)
    proc = run_tool(tool('test.py'), CONFIG, str(other), '--work-dir', 'work_dirs/other',
                    '--cfg-options', *FAST, check=False, cwd=workspace)
    line = error_line(proc)
    assert line.startswith(f'error: The checkpoint {other} does not fit the model: ')
    assert 'model tensors matched; not in the model: backbone.stages.2.9.' in line  # deeper
    assert "Its backbone is MambaOut-kobe, the model's MambaOut-femto." in line
    assert not (workspace / 'work_dirs/other/test_metrics.json').exists()


def test_a_checkpoint_cut_short_names_the_one_to_resume_from(workspace):
    """A run killed while it saved: the resumed checkpoint is named, and the one before it."""
    work_dir = workspace / 'work_dirs' / 'cut_short'
    work_dir.mkdir(parents=True)
    torch.save({'meta': {'epoch': 1}}, work_dir / 'epoch_1.pth')
    torch.save({'meta': {'epoch': 2}, 'state_dict': {'w': torch.zeros(4096)}},
               work_dir / 'epoch_2.pth')
    whole = (work_dir / 'epoch_2.pth').read_bytes()
    (work_dir / 'epoch_2.pth').write_bytes(whole[:len(whole) // 2])
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_2.pth'))
    for resume in (['--resume'], ['--resume', str(work_dir / 'epoch_2.pth')]):
        proc = run_tool(tool('train.py'), CONFIG, '--work-dir', str(work_dir), *resume,
                        '--cfg-options', *FAST, check=False, cwd=workspace)
        line = error_line(proc)
        assert line.startswith(f'error: {work_dir}/epoch_2.pth is a truncated or damaged '
                               f'PyTorch checkpoint')
        assert line.endswith(f'To go on, resume from the checkpoint before it: --resume '
                             f'{work_dir}/epoch_1.pth.')


def test_a_neck_that_leaves_a_backbone_map_unread_stops_training_at_load(workspace):
    proc = run_tool(tool('train.py'), CONFIG, '--cfg-options', 'model.neck.start_level=1', *FAST,
                    check=False, cwd=workspace)
    line = error_line(proc)
    assert 'model.backbone.out_indices=(0, 1, 2, 3)' in line
    assert 'model.neck.start_level=1' in line and 'that no module reads' in line
    assert 'set model.backbone.out_indices=(1, 2, 3) with model.neck.in_channels=' in line


def test_load_from_another_number_of_classes_fine_tunes_listing_what_it_left(workspace):
    """Fine-tuning on other classes: load_from loads what fits and lists the rest."""
    from mambaout_mm.utils.config import build_model, load_config
    coco80 = workspace / 'coco80_mask_rcnn.pth'
    model = build_model(load_config(CONFIG, {'model.roi_head.bbox_head.num_classes': 80,
                                             'model.roi_head.mask_head.num_classes': 80}))
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, coco80)
    proc = run_tool(tool('train.py'), CONFIG, '--work-dir', 'work_dirs/coco80', '--cfg-options',
                    f'load_from={coco80}', 'train_cfg.max_epochs=1', *FAST, cwd=workspace)
    log = proc.stdout + proc.stderr
    assert (f'model tensors from The checkpoint {coco80} (a partial load); left at '
            f'initialisation: roi_head.bbox_head.fc_cls.weight, roi_head.bbox_head.fc_cls.bias, '
            f'roi_head.bbox_head.fc_reg.weight') in log
    assert checkpoint_meta(workspace / 'work_dirs/coco80/epoch_1.pth')['iter'] == 2
