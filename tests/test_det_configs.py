"""The Mask R-CNN configs: they build, and the Table 2 ones carry the paper's setup."""
from functools import lru_cache
from pathlib import Path

import pytest
from mmengine.config import Config

from mambaout_mm import MambaOutBackbone
from mambaout_mm.datasets import SHAPE_CLASSES
from mambaout_mm.datasets.data_check import check_datasets
from mambaout_mm.engine.amp import setup_amp
from mambaout_mm.engine.run_checks import check_pretrained_weights
from mambaout_mm.evaluation.paper import mambaout_rows, paper_recipe, paper_row, paper_setup
from mambaout_mm.utils.config import build_model, resolve_config_path
from mambaout_mm.utils.errors import RunSetupError
from mambaout_mm.weights.checkpoint import OFFICIAL_RELEASE

from .tools_helpers import REPO, unscoped

CONFIGS = sorted([*(REPO / 'configs' / 'mask_rcnn').glob('*.py'),
                  *(REPO / 'configs' / 'cascade_mask_rcnn').glob('*.py')])
TABLE2 = mambaout_rows('detection')  # variant -> Table 2 row


def load(name: str) -> Config:
    return Config.fromfile(REPO / 'configs' / 'mask_rcnn' / name)


@lru_cache(maxsize=None)
def build(path: Path):
    """The model a config builds (built once per test session)."""
    return build_model(Config.fromfile(path))


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: f'{p.parent.name}/{p.name}')
def test_every_config_loads_and_builds(path: Path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports == dict(imports=['mambaout_mm'], allow_failed_imports=False)
    model = build(path)
    backbone = model.backbone
    assert isinstance(backbone, MambaOutBackbone)
    if model.with_neck:  # the neck takes the channels of the maps the backbone returns
        assert model.neck.in_channels == [backbone.dims[i] for i in backbone.out_indices]


@pytest.mark.parametrize('size', TABLE2)
def test_table2_config_follows_the_paper_and_mmdets_1x(size):
    """Checked against the paper's stated setup (paper_results.json) and mmdet's own 1x configs,
    not against literals restated here."""
    cfg = load(f'mambaout_{size}_1x.py')
    setup, recipe = paper_setup('detection'), paper_recipe('detection')
    backbone = cfg.model.backbone
    assert backbone.type == 'MambaOutBackbone' and backbone.arch == size
    # the official ImageNet-1k release of this variant, fetched by URL
    assert backbone.init_cfg == dict(type='Pretrained',
                                     checkpoint=f'{OFFICIAL_RELEASE}/mambaout_{size}.pth')
    assert cfg.pretrained == backbone.init_cfg.checkpoint
    # _delete_=True: nothing of the base config's ResNet is left
    assert set(backbone) == {'type', 'arch', 'out_indices', 'drop_path_rate', 'init_cfg'}

    assert cfg.model.type == recipe['model']
    assert cfg.train_dataloader.dataset.type == recipe['dataset']
    assert cfg.train_cfg.max_epochs == recipe['max_epochs']
    resize = next(t for t in cfg.train_pipeline if t.type == 'Resize')
    assert list(resize.scale) == setup['train_scale'] and resize.keep_ratio

    optim = cfg.optim_wrapper
    assert (optim.type == 'AmpOptimWrapper') == setup['fp16'] and optim.loss_scale == 'dynamic'
    assert (optim.optimizer.type, optim.optimizer.lr) == (setup['optimizer'], setup['lr'])
    gpus = 4  # the paper's
    assert cfg.train_dataloader.batch_size * gpus == setup['total_batch_size'] == \
        cfg.auto_scale_lr.base_batch_size

    # the rest of the 1x recipe is mmdet's: the schedule of its Swin-T Mask R-CNN 1x (Table 2's
    # transformer peer; a 1000-iteration warm-up), and its COCO pipeline
    swin_1x = Config.fromfile(
        resolve_config_path('mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'))
    assert [unscoped(s) for s in cfg.param_scheduler] == unscoped(swin_1x.param_scheduler)
    assert unscoped(cfg.train_cfg) == unscoped(swin_1x.train_cfg)
    mmdet_coco = Config.fromfile(resolve_config_path('mmdet::_base_/datasets/coco_instance.py'))
    assert unscoped(cfg.train_pipeline) == unscoped(mmdet_coco.train_pipeline)


def test_table2_drop_path_rates_are_ours_below_the_authors_segmentation_ones():
    """The paper gives no detection drop-path rate; ours rise with the model and stay at or below
    the rate the authors gave for 160k-iteration segmentation (12 epochs regularise less)."""
    rates = [load(f'mambaout_{size}_1x.py').model.backbone.drop_path_rate for size in TABLE2]
    assert rates == sorted(set(rates)) and rates[0] > 0
    for size, rate in zip(TABLE2, rates):
        assert rate <= min(paper_setup('segmentation')['drop_path_rate'][size])


@pytest.mark.parametrize('size', TABLE2)
def test_detector_parameters_match_table2(size):
    model = build(REPO / 'configs' / 'mask_rcnn' / f'mambaout_{size}_1x.py')
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert params == pytest.approx(paper_row('detection', TABLE2[size])['params_m'], abs=0.5)


# Our 3x recipes -> the mmdet ConvNeXt configs whose recipe they run (S: drop path only).
CONVNEXT_3X = {
    'mask_rcnn': 'mmdet::convnext/mask-rcnn_convnext-{}-p4-w7_fpn_amp-ms-crop-3x_coco.py',
    'cascade_mask_rcnn': 'mmdet::convnext/cascade-mask-rcnn_convnext-{}-p4-w7_fpn_4conv1fc-giou_'
                         'amp-ms-crop-3x_coco.py',
}


def convnext_config(kind: str, size: str) -> Config:
    # mmpretrain, which their custom_imports name, is not needed to read them
    return Config.fromfile(resolve_config_path(CONVNEXT_3X[kind].format(size)),
                           import_custom_modules=False)


def three_x(kind: str, size: str) -> Path:
    """The family's 3x config of a size (Cascade's names start with the folder's)."""
    path, = (REPO / 'configs' / kind).glob(f'*mambaout_{size}_3x_ms.py')
    return path


@pytest.mark.parametrize('kind', CONVNEXT_3X)
@pytest.mark.parametrize('size', TABLE2)
def test_3x_configs_run_the_convnext_recipe(kind, size):
    cfg = unscoped(Config.fromfile(three_x(kind, size)).to_dict())
    peer = convnext_config(kind, 't')
    assert cfg['model']['backbone']['arch'] == size
    pipeline = cfg['train_dataloader']['dataset']['pipeline']
    assert pipeline == peer.train_dataloader.dataset.pipeline
    assert any(t['type'] == 'RandomChoice' for t in pipeline)
    assert cfg['train_cfg'] == peer.train_cfg and cfg['train_cfg']['max_epochs'] == 36
    assert cfg['param_scheduler'] == peer.param_scheduler
    assert cfg['train_dataloader']['batch_size'] == peer.train_dataloader.batch_size
    for part in ('type', 'rpn_head', 'roi_head', 'train_cfg', 'test_cfg'):
        assert cfg['model'][part] == peer.model[part], part
    optim = cfg['optim_wrapper']
    assert optim['type'] == peer.optim_wrapper.type == 'AmpOptimWrapper'
    assert optim['optimizer'] == peer.optim_wrapper.optimizer
    assert 'constructor' not in optim  # no layer-wise lr decay, as the MambaOut authors train


@pytest.mark.parametrize('kind', CONVNEXT_3X)
def test_3x_drop_path_rates_follow_convnext(kind):
    rates = [Config.fromfile(three_x(kind, size)).model.backbone.drop_path_rate
             for size in TABLE2]
    assert rates[0] == convnext_config(kind, 't').model.backbone.drop_path_rate
    # mmdet ships ConvNeXt-S for Cascade only; B is not in mmdet (ConvNeXt's own configs: 0.7)
    assert rates[1] == convnext_config('cascade_mask_rcnn', 's').model.backbone.drop_path_rate
    assert rates[0] < rates[1] < rates[2] < 1


def test_shapes_config_classes_are_the_generators():
    cfg = load('mask_rcnn_mambaout_femto_shapes.py')
    assert tuple(cfg.metainfo.classes) == SHAPE_CLASSES
    assert cfg.model.roi_head.bbox_head.num_classes == len(SHAPE_CLASSES)
    assert cfg.model.backbone.init_cfg is None  # from scratch


def test_missing_weights_and_data_fail_with_the_expected_layout(tmp_path, monkeypatch, offline):
    monkeypatch.chdir(tmp_path)
    cfg = load('mambaout_tiny_1x.py')
    with pytest.raises(RunSetupError, match=r'Could not download the checkpoint https://.*'
                       r'releases/download/model/mambaout_tiny.pth.*hub/checkpoints'):
        check_pretrained_weights(cfg)
    with pytest.raises(RunSetupError, match=r'data/coco/annotations/instances_train2017.json.*'
                       r'Expected layout: COCO 2017'):
        check_datasets(cfg, ('train',))


@pytest.mark.parametrize('has_gpu,bf16_native,expected', [
    (True, False, 'AmpOptimWrapper'),
    (False, True, 'CPUAutocastOptimWrapper'),
    (False, False, 'OptimWrapper'),  # emulated bf16 is slower than fp32: fp32, said in the log
])
def test_amp_is_fp16_on_a_gpu_and_bfloat16_only_on_a_cpu_that_has_it(monkeypatch, has_gpu,
                                                                      bf16_native, expected):
    import torch

    from mambaout_mm.utils import cpu_support
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: has_gpu)
    # a CPU with or without bf16 instructions, whatever this one has (the log names the reason)
    monkeypatch.setattr(cpu_support, 'bf16_native', lambda: bf16_native)
    monkeypatch.setattr(cpu_support, 'hardware_bf16', lambda: bf16_native)
    cfg = load('mambaout_tiny_1x.py')
    chosen = setup_amp(cfg, requested=False)
    assert cfg.optim_wrapper.type == expected
    assert ('loss_scale' in cfg.optim_wrapper) == has_gpu
    if has_gpu:
        assert 'fp16' in chosen and cfg.optim_wrapper.loss_scale == 'dynamic'
        assert [h.type for h in cfg.custom_hooks] == ['LossScaleHook']
        setup_amp(cfg, requested=True)
        assert len(cfg.custom_hooks) == 1, 'the loss-scale hook was added twice'
    elif bf16_native:
        assert 'bfloat16 autocast of backbone, neck' in chosen
        assert cfg.optim_wrapper.modules == ['backbone', 'neck']
    else:
        assert chosen.startswith('off, training in float32') and 'AVX512-BF16' in chosen
        assert 'modules' not in cfg.optim_wrapper
    shapes = load('mask_rcnn_mambaout_femto_shapes.py')
    assert setup_amp(shapes, requested=False) is None  # fp32 unless asked
    assert shapes.optim_wrapper.type == 'OptimWrapper'


def test_bf16_named_in_the_config_is_kept_on_any_cpu(monkeypatch):
    """Forcing it (--cfg-options optim_wrapper.type=CPUAutocastOptimWrapper) is honoured, and the
    log says that bf16 is emulated."""
    import torch

    from mambaout_mm.utils import cpu_support
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(cpu_support, 'bf16_native', lambda: False)
    cfg = load('mambaout_tiny_1x.py')
    cfg.optim_wrapper.type = 'CPUAutocastOptimWrapper'
    chosen = setup_amp(cfg, requested=True)
    assert cfg.optim_wrapper.type == 'CPUAutocastOptimWrapper'
    assert 'emulated' in chosen and 'loss_scale' not in cfg.optim_wrapper


def test_a_cpu_wrappers_bfloat16_is_not_carried_to_a_gpu(monkeypatch):
    """A config written for CPU bf16 and run with --amp on a GPU trains FP16, as the log says."""
    import torch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = load('mask_rcnn_mambaout_femto_shapes.py')
    cfg.optim_wrapper.update(type='CPUAutocastOptimWrapper', dtype='bfloat16',
                             modules=['backbone'])
    assert setup_amp(cfg, requested=True).startswith('fp16 autocast')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert 'dtype' not in cfg.optim_wrapper and 'modules' not in cfg.optim_wrapper
    cfg.optim_wrapper.dtype = 'bfloat16'  # asked for in an AmpOptimWrapper config: kept, and said
    assert setup_amp(cfg, requested=True).startswith('bfloat16 autocast, as the config says')
