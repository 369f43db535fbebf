"""Every config whose ``_base_`` chain starts at one toolbox config (``mmdet::``/``mmseg::``: DINO,
RetinaNet, Mask2Former, the 3x and Cascade recipes, ...) is that config but for what it lists in
``differences_from_base``, each with its reason; it builds in the toolbox's registry as mmdet's and
mmseg's own tools build it, with the channels of its backbone.

The configs are found, not listed: a new family is covered by adding its configs.
"""
from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mambaout_mm import MambaOutBackbone
from mambaout_mm.datasets import SHAPE_CLASSES
from mambaout_mm.evaluation.heads import (
    IMPLICIT_DIFFERENCES,
    _leaves,
    _plain,
    check_differences,
    compare_with_base,
    config_metrics,
    toolbox_base,
)
from mambaout_mm.models.mambaout import resolve_arch
from mambaout_mm.utils.config import build_model, resolve_config_path

from .tools_helpers import REPO

CONFIGS = sorted(p for p in (REPO / 'configs').glob('*/*.py') if toolbox_base(p))
#: the configs whose ``_base_`` is the toolbox config itself (each family's first config)
ROOTS = [p for p in CONFIGS if toolbox_base(p) in p.read_text()]
FEMTO = [p for p in CONFIGS if 'femto' in p.stem]


def ids(path: Path) -> str:
    return f'{path.parent.name}/{path.name}'


@lru_cache(maxsize=None)
def toolbox_config(base: str) -> dict:
    return Config.fromfile(resolve_config_path(base), import_custom_modules=False).to_dict()


def test_the_families_are_found():
    families = {p.parent.name for p in CONFIGS}
    assert {'dino', 'retinanet', 'cascade_mask_rcnn'} <= families
    assert all(toolbox_base(p).startswith(('mmdet::', 'mmseg::')) for p in CONFIGS)
    assert toolbox_base(REPO / 'configs/mask_rcnn/mambaout_tiny_1x.py') is None  # a list of bases
    assert toolbox_base(REPO / 'configs/dino/dino_mambaout_base_5scale_12e.py') == \
        'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'


@pytest.mark.parametrize('path', CONFIGS, ids=ids)
def test_config_differs_from_its_toolbox_config_only_where_it_says_why(path):
    listed = Config.fromfile(path).get('differences_from_base')
    assert listed, (f'{ids(path)} derives from {toolbox_base(path)}: list what differs from it in '
                    '`differences_from_base = {dotted.path: reason}`')
    assert all(isinstance(reason, str) and len(reason) > 8 for reason in listed.values())
    unlisted, stale = check_differences(path)
    assert not unlisted, (f'{ids(path)} differs from {toolbox_base(path)} where '
                          f'differences_from_base says nothing: {unlisted}')
    assert not stale, f'{ids(path)} lists differences that are none: {stale}'


def mutated(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + '_changed'
    if isinstance(value, list):
        return [*value, 0]
    if isinstance(value, dict):
        return {'changed': 1}
    return 0  # None


def set_path(config: dict, path: str, value) -> None:
    *parents, last = path.split('.')
    node = config
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value


@pytest.mark.parametrize('path', ROOTS, ids=ids)
def test_changing_any_setting_it_does_not_list_fails_the_comparison(path):
    """Every setting but the listed ones, changed one at a time, is reported, and only it."""
    ours = _plain(Config.fromfile(path).to_dict())
    base = toolbox_config(toolbox_base(path))
    assert compare_with_base(ours, base) == ([], [])
    listed = [*ours['differences_from_base'], *IMPLICIT_DIFFERENCES]
    settings = [p for p, _ in _leaves(ours)
                if not any(p == key or p.startswith(key + '.') for key in listed)]
    assert len(settings) > 50  # optimizer, schedule, pipelines, head, evaluation...
    for setting, value in _leaves(ours):
        if setting not in settings:
            continue
        changed = copy.deepcopy(ours)
        set_path(changed, setting, mutated(value))
        unlisted = compare_with_base(changed, base).unlisted
        assert unlisted and all(p == setting or p.startswith(f'{setting}.') for p in unlisted), \
            setting  # (an empty dict changed reports the key it gained)
    # a setting the toolbox config has and ours lost, and a listed difference that is none
    changed = copy.deepcopy(ours)
    del changed['train_cfg']['max_epochs' if 'max_epochs' in changed['train_cfg'] else 'type']
    assert compare_with_base(changed, base).unlisted
    changed = copy.deepcopy(ours)
    changed['differences_from_base']['val_cfg'] = 'not a difference'
    assert compare_with_base(changed, base).stale == ['val_cfg']


@lru_cache(maxsize=None)
def built(path: Path):
    return build_model(Config.fromfile(path)).eval()


def backbone_consumer(model: dict) -> list[int]:
    """The channels the module after the backbone takes (the neck, or a head taking its maps)."""
    for name in ('neck', 'panoptic_head', 'decode_head'):
        if isinstance(model.get(name, {}).get('in_channels'), (list, tuple)):
            return list(model[name]['in_channels'])
    raise AssertionError(f'no neck or head with in_channels in {model["type"]}')


@pytest.mark.parametrize('path', CONFIGS, ids=ids)
def test_config_builds_as_the_toolboxs_tools_build_it(path):
    """mmdet's and mmseg's own tools/train.py (what `mim train` runs) read the config with its
    custom_imports and build the model in the scope the config names; the module after the
    backbone takes its channels. (Whole models of each family's first and femto configs; of the
    others, which change the backbone alone, the backbone.)"""
    cfg = Config.fromfile(path)
    assert cfg.default_scope == toolbox_base(path).split('::')[0]
    assert cfg.custom_imports == dict(imports=['mambaout_mm'], allow_failed_imports=False)
    assert cfg.model.backbone.type == 'MambaOutBackbone'
    if path in ROOTS or path in FEMTO:
        backbone = built(path).backbone
        assert isinstance(backbone, MambaOutBackbone)
        with torch.no_grad():
            channels = [m.shape[1] for m in backbone(torch.rand(1, 3, 64, 64))]
    else:
        dims = resolve_arch(cfg.model.backbone.arch)['dims']
        channels = [dims[i] for i in cfg.model.backbone.out_indices]
    assert backbone_consumer(cfg.model) == channels


@pytest.mark.parametrize('path', ROOTS, ids=ids)
def test_everything_after_the_backbone_and_neck_is_the_toolboxs_model(path):
    """The detector's or segmentor's head (transformer, queries, anchors, heads) has exactly the
    parameters of the toolbox config's model: only the backbone and the channels it gives
    differ."""
    def rest(model) -> dict[str, tuple[int, ...]]:
        return {name: tuple(p.shape) for name, p in model.named_parameters()
                if not name.startswith(('backbone.', 'neck.'))
                and not (name.startswith(('panoptic_head.pixel_decoder.input_convs.',
                                          'decode_head.pixel_decoder.input_convs.')))}
    theirs = build_model(Config.fromfile(resolve_config_path(toolbox_base(path))))
    assert rest(built(path)) == rest(theirs)


@pytest.mark.parametrize('path', FEMTO, ids=ids)
def test_femto_configs_predict_the_generated_shapes(path):
    cfg = Config.fromfile(path)
    assert tuple(cfg.metainfo.classes) == SHAPE_CLASSES
    assert cfg.model.backbone.arch == 'femto' and cfg.model.backbone.init_cfg is None
    counts = [v for p, v in _leaves(_plain(cfg.model.to_dict()))
              if p.endswith(('num_classes', 'num_things_classes'))]  # panoptic heads: things
    assert counts and set(counts) == {len(SHAPE_CLASSES)}


@pytest.mark.parametrize('path', CONFIGS, ids=ids)
def test_the_report_knows_the_metrics_its_evaluators_report(path):
    """tools/report.py reads them from the evaluators (the femto runs of test_head_tools.py
    check the keys against real metrics files)."""
    names = [m.name for m in config_metrics(Config.fromfile(path))]
    assert names and len(names) == len(set(names))
    assert {'APb', 'mIoU SS', 'PQ'} & set(names)
