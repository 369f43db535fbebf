"""The UperNet configs: they build, and the Table 3 ones carry the paper's and authors' setup."""
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mambaout_mm import MambaOutBackbone
from mambaout_mm.data_check import check_datasets
from mambaout_mm.datasets import SHAPE_CLASSES
from mambaout_mm.paper import paper_row
from mambaout_mm.checkpoint import OFFICIAL_RELEASE
from mambaout_mm.errors import RunSetupError
from mambaout_mm.run_checks import check_pretrained_weights
from mambaout_mm.config import build_model, resolve_config_path

from .tools_helpers import REPO, unscoped

CONFIGS = sorted((REPO / 'configs' / 'upernet').glob('*.py'))
TABLE3 = {'tiny': ('MambaOut-Tiny', 0.3), 'small': ('MambaOut-Small', 0.3),
          'base': ('MambaOut-Base', 0.6)}


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
def test_table3_config_carries_the_paper_setup(size):
    cfg = load(f'mambaout_{size}_160k.py')
    backbone = cfg.model.backbone
    assert backbone.type == 'MambaOutBackbone' and backbone.arch == size
    assert backbone.drop_path_rate == TABLE3[size][1]
    # the official ImageNet-1k release of this variant, fetched by URL
    assert backbone.init_cfg == dict(type='Pretrained',
                                     checkpoint=f'{OFFICIAL_RELEASE}/mambaout_{size}.pth')
    # _delete_=True: nothing of the base config's ResNet is left
    assert set(backbone) == {'type', 'arch', 'out_indices', 'drop_path_rate', 'init_cfg'}

    assert cfg.model.decode_head.type == 'UPerHead' and cfg.model.decode_head.num_classes == 150
    assert cfg.model.auxiliary_head.type == 'FCNHead' and cfg.model.auxiliary_head.in_index == 2
    assert cfg.crop_size == (512, 512) and cfg.model.data_preprocessor.size == (512, 512)
    dataset = cfg.train_dataloader.dataset
    assert dataset.type == 'ADE20KDataset'
    assert dict(type='LoadAnnotations', reduce_zero_label=True) in dataset.pipeline

    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters == 160000
    warmup, poly = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.end == poly.begin > 0
    assert poly.type == 'PolyLR' and poly.end == 160000 and poly.power == 1.0

    optim = cfg.optim_wrapper
    assert optim.type == 'AmpOptimWrapper' and optim.loss_scale == 'dynamic'
    assert optim.optimizer.type == 'AdamW' and optim.optimizer.lr == 1e-4
    assert optim.paramwise_cfg == dict(norm_decay_mult=0., bias_decay_mult=0.)
    assert 'constructor' not in optim  # no layer-wise lr decay
    assert cfg.train_dataloader.batch_size * 4 == 16 == cfg.auto_scale_lr.base_batch_size

    assert cfg.tta_model.type == 'SegTTAModel'
    resizes, flips = cfg.tta_pipeline[1].transforms[:2]
    assert [t.scale_factor for t in resizes] == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    assert sorted(t.prob for t in flips) == [0.0, 1.0]


@pytest.mark.parametrize('size', TABLE3)
def test_segmentor_parameters_match_table3(size):
    model = build(REPO / 'configs' / 'upernet' / f'mambaout_{size}_160k.py')
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert params == pytest.approx(paper_row('seg', TABLE3[size][0])['params_m'], abs=0.5)


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
    cfg = load('mambaout_femto_shapes.py')
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
