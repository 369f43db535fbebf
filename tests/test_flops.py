"""tools/get_flops.py reproduces published Params and MACs (within 1%): the Tables 2 and 3 columns
and, for the Cascade counting convention and the 640 crops, ConvNeXt's and Swin's own figures.

Counting a full-size model at the papers' input size is CPU work of tens of seconds to minutes
each; these are marked slow: `make test-slow` runs them. `make costs` counts the whole table.
"""
from functools import partial
from pathlib import Path

import pytest
import torch

from mambaout_mm.evaluation.complexity import model_complexity, paper_shape
from mambaout_mm.evaluation.heads import toolbox_base
from mambaout_mm.evaluation.paper import paper_recipe, paper_table
from mambaout_mm.evaluation.published_costs import cost_table, published_configs, published_cost
from mambaout_mm.evaluation.report import backbone_name, run_recipe
from mambaout_mm.utils.config import TASKS, build_model, load_config, resolve_config_path, toolbox

from .tools_helpers import REPO, config, run_tool, tool

COUNTED = [config('mask_rcnn/mambaout_tiny_1x.py'), config('mask_rcnn/mambaout_small_1x.py'),
           config('mask_rcnn/mambaout_base_1x.py'), config('upernet/mambaout_tiny_160k.py'),
           config('upernet/mambaout_small_160k.py'), config('upernet/mambaout_base_160k.py'),
           config('peers/cascade_mask_rcnn/swin_tiny_3x_ms.py'),
           'mmseg::convnext/convnext-base_upernet_8xb2-amp-160k_ade20k-640x640.py']


@pytest.mark.slow
@pytest.mark.parametrize('path', COUNTED, ids=lambda p: p.split('configs/')[-1])
def test_params_and_macs_match_the_published_ones(path):
    measured = model_complexity(path)
    expected = published_cost(path)
    assert measured['macs_g'] == pytest.approx(expected['macs_g'], rel=0.01)
    assert measured['params_m'] == pytest.approx(expected['params_m'], rel=0.01, abs=0.5)


@pytest.mark.parametrize('name', published_configs())
def test_every_published_figure_names_a_config_there_is(name):
    path = name if '::' in name else config(name)
    resolve_config_path(path)  # raises if there is none
    figures = published_cost(path)
    # in millions and billions: a count in units or in the wrong prefix falls outside
    assert 1 < figures['params_m'] < 1000 and 10 < figures['macs_g'] < 10_000
    assert figures['source']


@pytest.mark.parametrize('path, shape', [('mask_rcnn/mambaout_tiny_3x_ms.py', (800, 1280)),
                                         ('upernet/mambaout_tiny_160k.py', (512, 2048)),
                                         ('upernet/mambaout_base_plus_rw_in12k_160k_640.py',
                                          (640, 2560))])
def test_models_are_counted_at_the_papers_sizes(path, shape):
    assert paper_shape(load_config(config(path))) == shape


def test_counts_scale_with_the_input_and_skip_the_auxiliary_head():
    small = model_complexity(config('upernet/upernet_mambaout_femto_shapes.py'), shape=(128, 128))
    large = model_complexity(config('upernet/upernet_mambaout_femto_shapes.py'), shape=(256, 256))
    # Params are the built model's, the auxiliary head's included (as the papers count them)
    model = build_model(load_config(config('upernet/upernet_mambaout_femto_shapes.py')))
    built = sum(p.numel() for p in model.parameters())
    assert small['params_m'] == large['params_m'] == round(built / 1e6, 2)
    assert large['macs_g'] == pytest.approx(4 * small['macs_g'], rel=0.05)


def test_cli_prints_a_row_per_config_including_a_peer(tmp_path):
    out = tmp_path / 'rows.json'
    proc = run_tool(tool('get_flops.py'), config('mask_rcnn/mask_rcnn_mambaout_femto_shapes.py'),
                    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', '--shape', '128', '192',
                    '--json', str(out))
    lines = [line for line in proc.stdout.splitlines() if line.startswith('| ')]
    assert len(lines) == 3 and '128x192' in lines[1] and 'swin' in lines[2]
    assert lines[2].endswith('| - | - |')  # published figures hold at the papers' sizes only
    assert out.read_text().count('macs_g') == 2


@pytest.mark.parametrize('imports', [['mambaout_mm', 'no_such_toolbox.models'],
                                     'no_such_toolbox.models'])  # a list, or one string as mmseg's
def test_cli_names_a_package_a_config_imports_but_is_missing(tmp_path, imports):
    """As the ConvNeXt peers do without mmpretrain: the package is named, not a PYTHONPATH hint."""
    cfg = tmp_path / 'needs_a_package.py'
    cfg.write_text(f"_base_ = {config('mask_rcnn/mask_rcnn_mambaout_femto_shapes.py')!r}\n"
                   f"custom_imports = dict(imports={imports!r}, allow_failed_imports=False)\n")
    proc = run_tool(tool('get_flops.py'), str(cfg), check=False)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert ('imports no_such_toolbox.models (custom_imports), but no_such_toolbox is not '
            'installed: pip install no_such_toolbox') in proc.stderr


def is_paper_config(cfg) -> bool:
    """Table 2's or Table 3's recipe with one of its variants (the 1x and 160k T/S/B configs)."""
    task = TASKS[toolbox(cfg)]
    recipe = run_recipe(cfg, task)
    return (all(recipe.get(k) == v for k, v in paper_recipe(task).items())
            and backbone_name(cfg.model.backbone.get('arch')) in paper_table(task))


def test_the_cost_table_holds_every_recipe_beyond_the_paper_and_its_peers():
    """`make costs` reads its configs from the data file: each resolves to a config file and has
    its papers' input size; every MambaOut config beyond Tables 2 and 3 (3x, Cascade,
    ImageNet-12k, DINO, RetinaNet, ... found, not listed) is among them, and so is the toolbox
    config each family derives from (its peer at the same recipe)."""
    table = cost_table()
    for name in table:
        assert Path(resolve_config_path(name)).is_file(), name
    ours = [p for p in sorted((REPO / 'configs').glob('*/*mambaout_*.py'))
            if 'femto' not in p.stem]
    beyond = {f'mambaout_mm::{p.relative_to(REPO / "configs").as_posix()}'
              for p in ours if not is_paper_config(load_config(str(p)))}
    assert {'mambaout_mm::dino/dino_mambaout_tiny_4scale_12e.py',
            'mambaout_mm::mask_rcnn/mambaout_tiny_3x_ms.py'} <= beyond  # the rule finds them
    assert not {f'mambaout_mm::mask_rcnn/mambaout_{s}_1x.py' for s in ('tiny', 'base')} & beyond
    assert sorted(beyond - set(table)) == []
    families = {toolbox_base(p) for p in ours} - {None}
    assert sorted(families - set(table)) == []
    for name in table:
        assert paper_shape(load_config(name)) in {(800, 1280), (512, 2048), (640, 2560)}, name
    assert published_cost('mambaout_mm::mask_rcnn/mambaout_tiny_3x_ms.py') == \
        published_cost(str(REPO / 'configs' / 'mask_rcnn' / 'mambaout_tiny_3x_ms.py'))


def test_deformable_attention_is_counted_as_the_cpu_computes_it():
    """On a CPU mmcv's deformable attention is F.grid_sample per level, which mmengine's counter
    counts (as it counts the linear layers around it); on a GPU the same MACs run in mmcv's
    CUDA op, which the counter would not see."""
    from mmdet.structures import DetDataSample
    from mmengine.analysis import FlopAnalyzer
    path = config('dino/dino_mambaout_femto_shapes.py')
    counted = model_complexity(path, shape=(128, 192))
    model = build_model(load_config(path)).eval()
    meta = dict(img_shape=(128, 192), ori_shape=(128, 192), pad_shape=(128, 192),
                batch_input_shape=(128, 192), scale_factor=(1.0, 1.0))
    model.forward = partial(model.forward, data_samples=[DetDataSample(metainfo=meta)],
                            mode='tensor')
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, torch.rand(1, 3, 128, 192))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        by_operator = analyzer.by_operator()
    assert by_operator['grid_sampler'] > 0 and by_operator['linear'] > 0
    assert sum(by_operator.values()) / 1e9 == pytest.approx(counted['macs_g'], abs=0.05)
