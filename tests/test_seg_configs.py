"""The UperNet configs: they build, and the Table 3 ones carry the paper's and authors' setup."""
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mambaout_mm import MambaOutBackbone
from mambaout_mm.datasets import SHAPE_CLASSES
from mambaout_mm.datasets.data_check import check_datasets
from mambaout_mm.engine.run_checks import check_pretrained_weights
from mambaout_mm.evaluation.paper import mambaout_rows, paper_recipe, paper_row, paper_setup
from mambaout_mm.utils.config import build_model, resolve_config_path
from mambaout_mm.utils.errors import RunSetupError
from mambaout_mm.weights.checkpoint import OFFICIAL_RELEASE

from .tools_helpers import REPO, unscoped

CONFIGS = sorted((REPO / 'configs' / 'upernet').glob('*.py'))
TABLE3 = mambaout_rows('segmentation')  # variant -> Table 3 row


def load(name: str) -> Config:
    return Config.fromfile(REPO / 'configs' / 'upernet' / name)


@lru_cache(maxsize=None)
def build(path: Path):
    """The model a config builds (built once per test session)."""
    return build_model(Config.fromfile(path))


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_every_config_loads_and_builds(path: Path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports == dict(imports=['mambaout_mm'], allow_failed_imports=False)
    model = build(path)
    backbone = model.backbone
    assert isinstance(backbone, MambaOutBackbone)
    assert all(hasattr(backbone, f'norm{i}') for i in backbone.out_indices)  # a LayerNorm each
    outputs = [backbone.dims[i] for i in backbone.out_indices]
    heads = [model.decode_head]
    if model.with_auxiliary_head:
        aux = model.auxiliary_head
        heads += list(aux) if isinstance(aux, torch.nn.ModuleList) else [aux]
    for head in heads:  # each head takes the channels of the maps it selects (in_index)
        taken = ([outputs[i] for i in head.in_index] if isinstance(head.in_index, (list, tuple))
                 else outputs[head.in_index])
        assert head.in_channels == taken, type(head).__name__


@pytest.mark.parametrize('size', TABLE3)
def test_table3_config_follows_the_authors_and_mmsegs_ade20k(size):
    """Checked against the authors' stated setup (paper_results.json: the paper and the first
    author's issue #251) and mmseg's own ADE20K configs, not against literals restated here."""
    cfg = load(f'mambaout_{size}_160k.py')
    setup, recipe = paper_setup('segmentation'), paper_recipe('segmentation')
    backbone = cfg.model.backbone
    assert backbone.type == 'MambaOutBackbone' and backbone.arch == size
    assert backbone.drop_path_rate in setup['drop_path_rate'][size]
    # the official ImageNet-1k release of this variant, fetched by URL
    assert backbone.init_cfg == dict(type='Pretrained',
                                     checkpoint=f'{OFFICIAL_RELEASE}/mambaout_{size}.pth')
    # _delete_=True: nothing of the base config's ResNet is left
    assert set(backbone) == {'type', 'arch', 'out_indices', 'drop_path_rate', 'init_cfg'}
    assert setup['stage_output_norms']  # MambaOutBackbone's norm0..3, always on

    assert cfg.model.type == recipe['model'] and cfg.model.decode_head.type == recipe['decode_head']
    assert cfg.train_dataloader.dataset.type == recipe['dataset']
    assert cfg.train_cfg.max_iters == recipe['max_iters']
    assert list(cfg.crop_size) == recipe['crop_size'] == list(cfg.model.data_preprocessor.size)

    optim = cfg.optim_wrapper
    assert (optim.type == 'AmpOptimWrapper') == setup['fp16'] and optim.loss_scale == 'dynamic'
    assert (optim.optimizer.type, optim.optimizer.lr) == (setup['optimizer'], setup['lr'])
    assert ('constructor' in optim) == setup['layer_wise_lr_decay']
    gpus = 4  # the paper's
    assert cfg.train_dataloader.batch_size * gpus == setup['total_batch_size'] == \
        cfg.auto_scale_lr.base_batch_size

    # the rest is mmseg's: UperNet's heads and schedule (its Swin-T config, which the authors
    # started from), its ADE20K pipelines and multi-scale + flip test
    swin = Config.fromfile(resolve_config_path(
        'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'))
    for head in ('decode_head', 'auxiliary_head'):
        ours = {k: v for k, v in unscoped(cfg.model[head]).items() if k != 'in_channels'}
        assert ours == {k: v for k, v in unscoped(swin.model[head]).items() if k != 'in_channels'}
    assert [unscoped(s) for s in cfg.param_scheduler] == unscoped(swin.param_scheduler)
    ade = Config.fromfile(resolve_config_path('mmseg::_base_/datasets/ade20k.py'))
    assert unscoped(cfg.train_pipeline) == unscoped(ade.train_pipeline)
    assert cfg.tta_model.type == 'SegTTAModel'
    assert unscoped(cfg.tta_pipeline) == unscoped(ade.tta_pipeline)


@pytest.mark.parametrize('size', TABLE3)
def test_segmentor_parameters_match_table3(size):
    model = build(REPO / 'configs' / 'upernet' / f'mambaout_{size}_160k.py')
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert params == pytest.approx(paper_row('segmentation', TABLE3[size])['params_m'], abs=0.5)


def test_base_plus_at_512_is_table3_base_with_imagenet_12k_weights():
    cfg, base = load('mambaout_base_plus_rw_in12k_160k.py'), load('mambaout_base_160k.py')
    assert cfg.model.backbone.arch == 'base_plus_rw'
    # timm's ImageNet-12k release of that variant, by URL
    checkpoint = cfg.model.backbone.init_cfg.checkpoint
    assert checkpoint.startswith('https://huggingface.co/timm/mambaout_base_plus_rw.sw_e150_in12k/')
    assert checkpoint.endswith('.safetensors')
    for key in ('train_dataloader', 'optim_wrapper', 'param_scheduler', 'train_cfg'):
        assert cfg[key] == base[key], key
    assert {k: v for k, v in cfg.model.items() if k != 'backbone'} == \
        {k: v for k, v in base.model.items() if k != 'backbone'}


def test_base_plus_at_640_has_mmseg_640_data_and_convnext_640_test():
    cfg = Config(unscoped(load('mambaout_base_plus_rw_in12k_160k_640.py').to_dict()))
    data = Config.fromfile(resolve_config_path('mmseg::_base_/datasets/ade20k_640x640.py'))
    convnext = Config.fromfile(resolve_config_path(
        'mmseg::convnext/convnext-base_upernet_8xb2-amp-160k_ade20k-640x640.py'),
        import_custom_modules=False)
    assert cfg.train_dataloader.dataset.pipeline == data.train_pipeline
    assert cfg.test_dataloader.dataset.pipeline == data.test_pipeline
    assert cfg.model.data_preprocessor.size == tuple(data.crop_size)
    assert cfg.model.test_cfg == convnext.model.test_cfg
    assert cfg.train_cfg == convnext.train_cfg and cfg.param_scheduler == convnext.param_scheduler


def test_shapes_config_classes_are_the_generators():
    cfg = load('upernet_mambaout_femto_shapes.py')
    assert tuple(cfg.metainfo.classes) == SHAPE_CLASSES
    assert cfg.model.decode_head.num_classes == len(SHAPE_CLASSES)
    assert cfg.train_dataloader.batch_size >= 2  # BatchNorm in the pooling module
    assert cfg.model.backbone.init_cfg is None


def test_missing_weights_and_data_fail_with_the_expected_layout(tmp_path, monkeypatch, offline):
    monkeypatch.chdir(tmp_path)
    cfg = load('mambaout_small_160k.py')
    with pytest.raises(RunSetupError, match=r'Could not download the checkpoint https://.*'
                       r'mambaout_small.pth'):
        check_pretrained_weights(cfg)
    cfg.model.backbone.init_cfg.checkpoint = 'checkpoints/mambaout_small.pth'
    with pytest.raises(RunSetupError, match=r'Pretrained weights not found: '
                       r'checkpoints/mambaout_small.pth.*releases/download/model/mambaout_small'):
        check_pretrained_weights(cfg)
    with pytest.raises(RunSetupError, match=r'data/ade/ADEChallengeData2016/images/validation.*'
                       r'Expected layout: ADE20K'):
        check_datasets(cfg, ('val',))
