"""The GPU check suite (`make test-gpu`): what a GPU user needs proven before a paper run.

Collected everywhere, deselected where torch sees no CUDA device (``conftest.py``). The detector
and segmentor runs need mmcv with CUDA ops (``tools/setup_env.sh`` builds them on a GPU machine).
They train the Table 2 and Table 3 configs as they are (FP16 ``AmpOptimWrapper``, the paper's
image sizes) on generated stand-ins for COCO and ADE20K, with random backbone weights.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mambaout_mm import MambaOutBackbone
from mambaout_mm.datasets import make_ade_shapes, make_coco_shapes
from mambaout_mm.models.random_weights import randomize_

from .precision_helpers import HEAVY, TOLERANCE, relative_errors
from .tools_helpers import KEEP_LOW_SCORES, checkpoint_meta, config, run_tool, tool

pytestmark = pytest.mark.gpu

SIZES = ['tiny', 'small', 'base']


#: relative error (L2 over each stage output) of autocast features against strict fp32
def strict_fp32() -> None:
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False


@pytest.mark.parametrize('arch', SIZES)
def test_fp16_and_bf16_features_follow_fp32(arch):
    strict_fp32()
    model = randomize_(MambaOutBackbone(arch)).cuda().eval()
    x = torch.randn(2, 3, 512, 512, generator=torch.Generator().manual_seed(0)).cuda()
    with torch.inference_mode():
        refs = model(x)
        for dtype, tol in TOLERANCE.items():
            with torch.autocast('cuda', dtype=dtype):
                outs = model(x)
            assert all(o.dtype == torch.float32 for o in outs)  # the output norms run in fp32
            errors = relative_errors(outs, refs)
            assert max(errors) < tol, (dtype, errors)


def test_our_backbone_computes_timms_function_on_the_gpu():
    from mambaout_mm.benchmark.subjects import feature_agreement, mambaout_backbone, timm_mambaout
    strict_fp32()
    ours = randomize_(mambaout_backbone('tiny')).cuda()
    theirs = timm_mambaout('tiny', like=ours).cuda()
    x = torch.randn(2, 3, 224, 288, device='cuda')
    assert feature_agreement(ours, theirs, x) < 1e-4


def _peak_memory_and_grads(with_cp: bool, x: torch.Tensor) -> tuple[float, dict]:
    torch.manual_seed(0)
    model = MambaOutBackbone('tiny', with_cp=with_cp).cuda().train()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    sum(out.square().mean() for out in model(x)).backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    return peak, {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def test_with_cp_lowers_peak_memory_and_keeps_the_gradients():
    strict_fp32()
    torch.backends.cudnn.deterministic = True
    try:
        x = torch.randn(2, 3, 512, 512, device='cuda')
        peak, grads = _peak_memory_and_grads(False, x)
        peak_cp, grads_cp = _peak_memory_and_grads(True, x)
    finally:
        torch.backends.cudnn.deterministic = False
    assert peak_cp < 0.6 * peak, (peak_cp, peak)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_cp[name], grad, rtol=1e-4, atol=1e-7, msg=name)


def follows_dynamic_loss_scaling(scales: list[float], init: float, growth_interval: int) -> bool:
    """Whether ``scales`` (one per iteration, after its update) is a trajectory of torch's
    ``GradScaler``: halve on an overflow, double after ``growth_interval`` finite steps."""
    scale, finite_steps = init, 0
    for new in scales:
        if new == scale / 2:
            finite_steps = 0
        elif new == scale and finite_steps + 1 < growth_interval:
            finite_steps += 1
        elif new == 2 * scale and finite_steps + 1 == growth_interval:
            finite_steps = 0
        else:
            return False
        scale = new
    return True


def training_log(work_dir: Path) -> list[dict]:
    """The per-iteration records of the run's ``vis_data/scalars.json``."""
    (path,) = work_dir.glob('*/vis_data/scalars.json')
    return [r for r in map(json.loads, path.read_text().splitlines()) if 'loss' in r]


def fp16_run_config(folder: Path, base: str, init_scale: float, growth_interval: int) -> str:
    """A config that is ``base`` with random backbone weights and a loss scale that moves
    within a few iterations (mmengine's default grows it after 2000 finite steps)."""
    path = folder / f'{Path(base).stem}_fp16_check.py'
    path.write_text(f"_base_ = [{base!r}]\n"
                    "model = dict(backbone=dict(init_cfg=None))\n"
                    f"optim_wrapper = dict(loss_scale=dict(_delete_=True, init_scale={init_scale}, "
                    f"growth_interval={growth_interval}))\n")
    return str(path)


def check_fp16_training(work_dir: Path, log: str, iters: int, init: float, interval: int) -> None:
    assert 'Mixed precision: fp16 autocast with a dynamic loss scale' in log
    records = training_log(work_dir)
    assert [r['iter'] for r in records] == list(range(1, iters + 1))
    assert all(math.isfinite(r['loss']) for r in records), [r['loss'] for r in records]
    scales = [r['fp16_scale'] for r in records]
    assert follows_dynamic_loss_scaling(scales, init, interval), scales


@pytest.fixture(scope='module')
def coco(tmp_path_factory) -> Path:
    """data/coco with 4 training and 2 validation images at the Table 2 size: COCO's 80
    categories (the config's), the shapes labelled as the first of them."""
    from mmdet.datasets import CocoDataset
    root = tmp_path_factory.mktemp('coco_gpu')
    data = root / 'data' / 'coco'
    make_coco_shapes(data, num_train=4, num_val=2, image_size=(800, 1333))
    for ann in (data / 'annotations').glob('instances_*.json'):
        coco = json.loads(ann.read_text())
        new_id = {cat['id']: i + 1 for i, cat in enumerate(coco['categories'])}
        for a in coco['annotations']:
            a['category_id'] = new_id[a['category_id']]
        coco['categories'] = [dict(id=i + 1, name=name)
                              for i, name in enumerate(CocoDataset.METAINFO['classes'])]
        ann.write_text(json.dumps(coco))
    return root


def train_and_test_in_fp16(root: Path, base: str, train_options: list[str], checkpoint: str,
                          test_options: list[str]) -> dict:
    """Train ``base`` for 8 iterations of 2 images in FP16 (loss scale from 2**20, doubled after
    2 finite steps), check the run, evaluate its ``checkpoint`` with tools/test.py; the metrics."""
    init, interval = 2.0 ** 20, 2
    cfg = fp16_run_config(root, config(base), init, interval)
    work_dir = root / 'work_dirs' / Path(base).stem
    proc = run_tool(tool('train.py'), cfg, '--work-dir', str(work_dir), '--cfg-options',
                    'train_dataloader.batch_size=2', 'train_dataloader.num_workers=2',
                    'default_hooks.logger.interval=1', *train_options, cwd=root, gpu=True)
    check_fp16_training(work_dir, proc.stdout + proc.stderr, 8, init, interval)
    run_tool(tool('test.py'), cfg, str(work_dir / checkpoint), '--work-dir',
             str(work_dir / 'test'), '--cfg-options', *test_options, cwd=root, gpu=True)
    return json.loads((work_dir / 'test' / 'test_metrics.json').read_text())['metrics']


@pytest.mark.parametrize('arch', ['tiny', *HEAVY])
def test_table2_mask_rcnn_trains_in_fp16_and_evaluates(coco, arch):
    metrics = train_and_test_in_fp16(
        coco, f'mask_rcnn/mambaout_{arch}_1x.py',
        ['train_cfg.max_epochs=4', 'train_cfg.val_interval=4', *KEEP_LOW_SCORES],
        'epoch_4.pth', KEEP_LOW_SCORES)
    assert all(0 <= metrics[k] <= 1 for k in ('coco/bbox_mAP', 'coco/segm_mAP'))


@pytest.fixture(scope='module')
def ade(tmp_path_factory) -> Path:
    """data/ade/ADEChallengeData2016 with 4 training and 2 validation images."""
    root = tmp_path_factory.mktemp('ade_gpu')
    make_ade_shapes(root / 'data' / 'ade' / 'ADEChallengeData2016', num_train=4, num_val=2,
                    image_size=(512, 683))
    return root


@pytest.mark.parametrize('arch', ['tiny', *HEAVY])
def test_table3_upernet_trains_in_fp16_and_evaluates(ade, arch):
    metrics = train_and_test_in_fp16(
        ade, f'upernet/mambaout_{arch}_160k.py',
        ['train_cfg.max_iters=8', 'train_cfg.val_interval=8',
         'default_hooks.checkpoint.interval=8'],
        'iter_8.pth', ['test_dataloader.num_workers=2'])
    assert 0 <= metrics['mIoU'] <= 100


def test_two_process_ddp_trains_on_the_gpus(coco):
    """NCCL with a GPU per process; with one GPU, two single-process nodes share it over gloo
    (NCCL refuses two ranks on one GPU). DDP without find_unused_parameters fails on a parameter
    that gets no gradient: a finished run shows none."""
    make_coco_shapes(coco / 'data' / 'coco_shapes', num_train=8, num_val=2)
    env = dict(os.environ, PYTHON=sys.executable, PYTHONWARNINGS='ignore', PORT='29541')
    args = ['--work-dir', 'work_dirs/ddp', '--amp', '--cfg-options', 'train_cfg.max_epochs=1',
            'train_dataloader.batch_size=2', 'train_cfg.val_interval=10']
    if torch.cuda.device_count() >= 2:
        nodes = [(env, '2')]
    else:
        args.append('env_cfg.dist_cfg.backend=gloo')
        nodes = [(dict(env, NNODES='2', NODE_RANK=str(rank)), '1') for rank in (0, 1)]
    procs = [subprocess.Popen(['bash', tool('dist_train.sh'),
                               config('mask_rcnn/mask_rcnn_mambaout_femto_shapes.py'), gpus, *args],
                              cwd=coco, env=node_env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
             for node_env, gpus in nodes]
    logs = [p.communicate(timeout=900)[0] for p in procs]
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, log[-5000:]
    assert 'Distributed training: True' in logs[0]
    assert checkpoint_meta(coco / 'work_dirs/ddp/epoch_1.pth')['iter'] == 2  # 8 / (2 x 2)
