"""The recipes beyond Tables 2 and 3 train through tools/train.py: each config, unchanged but for
its data (the generated shapes, whose 4 classes the detectors' heads then predict), 2 iterations
from random weights on the CPU, then mmengine's end-of-training validation.

Their images are the recipes' own sizes (multi-scale up to 1333x800, 640x640 crops), so each run
takes a minute or more: `slow`."""
import math
import re
from pathlib import Path

import pytest
from mmengine import Config

from mambaout_mm.datasets import SHAPE_CLASSES, make_ade_shapes, make_coco_shapes

from .tools_helpers import IN_PROCESS_LOADERS, checkpoint_meta, config, run_tool, tool

pytestmark = pytest.mark.slow

# The recipe's config with its dataset swapped for the shapes (same layout, 4 images a split).
DET_DATA = """_base_ = {config!r}
data_root = 'data/coco_shapes/'
metainfo = dict(classes={classes!r})
train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root, metainfo=metainfo))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1)
"""
SEG_DATA = """_base_ = {config!r}
data_root = 'data/ade_shapes'
train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root))  # 2: BatchNorm of 1x1 maps
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=2)
"""


def class_options(recipe: str) -> list[str]:
    """--cfg-options giving every classifying RoI head (one or a cascade of them) the shapes'
    classes: a random 80-class head on 4-class data yields labels COCO evaluation cannot name."""
    def paths(node, prefix: str):
        if isinstance(node, dict):
            if 'num_classes' in node:
                yield prefix
            for key, value in node.items():
                yield from paths(value, f'{prefix}.{key}')
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from paths(value, f'{prefix}.{i}')

    model = Config.fromfile(config(recipe)).model.to_dict()
    return [f'{path}.num_classes={len(SHAPE_CLASSES)}'
            for path in paths(model.get('roi_head', {}), 'model.roi_head')]


@pytest.fixture(scope='module')
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('recipes')
    make_coco_shapes(root / 'data' / 'coco_shapes', num_train=4, num_val=2)
    make_ade_shapes(root / 'data' / 'ade_shapes', num_train=2, num_val=2)
    return root


@pytest.mark.parametrize('recipe, template, last', [
    ('mask_rcnn/mambaout_tiny_3x_ms.py', DET_DATA, 'epoch_1.pth'),
    ('cascade_mask_rcnn/cascade_mask_rcnn_mambaout_tiny_3x_ms.py', DET_DATA, 'epoch_1.pth'),
    ('upernet/mambaout_base_plus_rw_in12k_160k_640.py', SEG_DATA, 'iter_2.pth'),
])
def test_recipe_trains_two_iterations(workspace, recipe, template, last):
    config_file = workspace / recipe.replace('/', '__')
    config_file.write_text(template.format(config=config(recipe), classes=SHAPE_CLASSES))
    work_dir = workspace / 'work_dirs' / config_file.stem
    proc = run_tool(tool('train.py'), str(config_file), '--work-dir', str(work_dir),
                    '--device', 'cpu', '--cfg-options', 'model.backbone.init_cfg=None',
                    'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
                    *class_options(recipe), *IN_PROCESS_LOADERS, cwd=workspace)
    losses = [float(v) for v in re.findall(r' loss: (\S+)', proc.stdout + proc.stderr)]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses), losses
    assert checkpoint_meta(work_dir / last)['iter'] == 2
