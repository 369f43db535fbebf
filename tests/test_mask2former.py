"""The Mask2Former configs (configs/mask2former/): mmseg's and mmdet's Swin-T recipes with MambaOut,
the authors' drop path, Swin's optimizer rule for MambaOut's parameters, why they train in float32
(the matcher's mask cost in FP16), and mmseg's and mmdet's own tools/train.py on the femto configs.
What every toolbox-derived family shares (the settings against the toolbox config, the femto
configs through our tools and DDP) is in tests/test_head_configs.py and tests/test_head_tools.py."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import DefaultOptimWrapperConstructor

from mambaout_mm.datasets import SHAPE_CLASSES, make_ade_shapes, make_coco_shapes
from mambaout_mm.engine.fp16_emulation import gpu_fp16_autocast
from mambaout_mm.evaluation.paper import paper_setup
from mambaout_mm.models.mambaout import resolve_arch
from mambaout_mm.utils.config import build_model, load_config
from mambaout_mm.weights.checkpoint import OFFICIAL_RELEASE

from .tools_helpers import IN_PROCESS_LOADERS, REPO, checkpoint_meta, config, run_tool

FOLDER = REPO / 'configs' / 'mask2former'
SIZES = ('tiny', 'small', 'base')
#: each recipe's toolbox config (Swin-T), the head's key and the toolbox
RECIPES = {
    '160k_ade20k': ('mmseg::mask2former/mask2former_swin-t_8xb2-160k_ade20k-512x512.py',
                    'decode_head', 'mmseg'),
    '50e_coco_instance': ('mmdet::mask2former/mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco.py',
                          'panoptic_head', 'mmdet'),
    '50e_coco_panoptic': ('mmdet::mask2former/mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco-'
                          'panoptic.py', 'panoptic_head', 'mmdet'),
}
RECIPE_CONFIGS = [(size, recipe) for recipe in RECIPES for size in SIZES]


def recipe_config(size: str, recipe: str) -> str:
    return str(FOLDER / f'mask2former_mambaout_{size}_{recipe}.py')


def test_the_folder_holds_the_recipes_and_the_femto_configs():
    names = {p.name for p in FOLDER.glob('*.py')}
    assert names == {Path(recipe_config(*c)).name for c in RECIPE_CONFIGS} | {
        'mask2former_mambaout_femto_shapes.py', 'mask2former_mambaout_femto_shapes_instance.py'}


@pytest.mark.parametrize('size,recipe', RECIPE_CONFIGS)
def test_recipe_has_the_official_weights_the_authors_drop_path_and_fp32(size, recipe):
    cfg = load_config(recipe_config(size, recipe))
    swin, head, scope = RECIPES[recipe]
    assert cfg.default_scope == scope and 'mambaout_mm' in cfg.custom_imports.imports
    backbone = cfg.model.backbone
    assert set(backbone) == {'type', 'arch', 'out_indices', 'drop_path_rate', 'init_cfg'}
    assert (backbone.type, backbone.arch, backbone.out_indices) == \
        ('MambaOutBackbone', size, (0, 1, 2, 3))
    assert backbone.init_cfg == dict(type='Pretrained',
                                     checkpoint=f'{OFFICIAL_RELEASE}/mambaout_{size}.pth')
    # the authors' ADE20K rates (issue #251), kept for COCO (see the configs)
    assert backbone.drop_path_rate in paper_setup('segmentation')['drop_path_rate'][size]
    assert cfg.model[head].in_channels == list(resolve_arch(size)['dims'])
    # float32 as the toolbox's recipe: FP16 overflows the matcher (see the tests below)
    toolbox = load_config(swin)
    assert cfg.optim_wrapper.type == toolbox.optim_wrapper.type == 'OptimWrapper'


# ------------------------------------------------------------------ the optimizer's rule
def norm_params(model: torch.nn.Module) -> set[str]:
    norms = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.modules.batchnorm._BatchNorm)
    return {f'{name}.{p}' for name, m in model.named_modules() if isinstance(m, norms)
            for p, _ in m.named_parameters(recurse=False)}


def kind(name: str, norms: set[str]) -> str:
    """What Swin's Mask2Former rule tells apart."""
    part = 'backbone' if name.startswith('backbone.') else 'head'
    if name in norms:
        return f'{part} norm'
    if any(key in name for key in ('absolute_pos_embed', 'relative_position_bias_table',
                                   'query_embed', 'query_feat', 'level_embed')):
        return f'{part} embedding'
    return f'{part} other'


@lru_cache(maxsize=None)
def lr_and_decay_by_kind(path: str) -> dict[str, set[tuple[float, float]]]:
    """The (lr, weight decay) pairs mmengine's constructor gives each kind of parameter of the
    model ``path`` builds."""
    cfg = load_config(path)
    model = build_model(cfg)
    wrapper = cfg.optim_wrapper.to_dict()
    constructor = DefaultOptimWrapperConstructor(wrapper, wrapper.get('paramwise_cfg'))
    groups: list[dict] = []
    constructor.add_params(groups, model)
    names = {id(p): n for n, p in model.named_parameters()}
    norms = norm_params(model)
    base = (constructor.base_lr, constructor.base_wd)
    found: dict[str, set[tuple[float, float]]] = {}
    for group in groups:
        name = names[id(group['params'][0])]
        setting = (group.get('lr', base[0]), group.get('weight_decay', base[1]))
        found.setdefault(kind(name, norms), set()).add(setting)
    return found


@pytest.mark.parametrize('size,recipe', [(s, r) for s, r in RECIPE_CONFIGS if s != 'base'])
def test_every_parameter_gets_what_swins_rule_gives_its_kind(size, recipe):
    """Backbone at 0.1x lr, its norms without weight decay, the head's query and level
    embeddings without weight decay, its norms through norm_decay_mult: one setting per kind,
    and Swin-T's own config gives each kind the same. A block norm missing from custom_keys
    would decay (0.05): its kind would have two settings."""
    ours = lr_and_decay_by_kind(recipe_config(size, recipe))
    swin = lr_and_decay_by_kind(RECIPES[recipe][0])
    assert all(len(settings) == 1 for settings in ours.values()), ours
    assert set(ours) == set(swin) - {'backbone embedding'}  # MambaOut has no position tables
    assert {k: ours[k] for k in ours} == {k: swin[k] for k in ours}
    assert ours['backbone norm'] == {(1e-5, 0.0)} and ours['head embedding'] == {(1e-4, 0.0)}


@pytest.mark.parametrize('recipe', RECIPES)
def test_base_names_the_norms_small_does(recipe):
    """Base has Small's depths: the keys the rule test checks on Small (a build less)."""
    small, base = (load_config(recipe_config(size, recipe)) for size in ('small', 'base'))
    assert resolve_arch('small')['depths'] == resolve_arch('base')['depths']
    assert base.optim_wrapper == small.optim_wrapper and base.depths == small.depths


def test_a_norm_left_out_of_custom_keys_is_caught(tmp_path):
    """The rule's check fails when a single block's norm loses its key."""
    path = tmp_path / 'one_norm_less.py'
    path.write_text(f"_base_ = {recipe_config('tiny', '50e_coco_instance')!r}\n"
                    "optim_wrapper = dict(paramwise_cfg=dict(custom_keys={"
                    "'backbone.stages.2.8.norm': dict(_delete_=True, lr_mult=0.1)}))\n")
    assert len(lr_and_decay_by_kind(str(path))['backbone norm']) == 2


def test_layer_wise_decay_from_the_command_line_keeps_the_rule(tmp_path):
    """The configs' one-line switch to MambaOutLearningRateDecay: the backbone's layers at 0.1x
    times 0.9 per layer below the top, its norms and the head's embeddings still undecayed."""
    cfg = load_config(recipe_config('tiny', '160k_ade20k'), {
        'optim_wrapper.constructor': 'MambaOutLearningRateDecay',
        'optim_wrapper.paramwise_cfg.decay_rate': 0.9,
        'optim_wrapper.paramwise_cfg.num_layers': 6})
    from mmengine.optim import build_optim_wrapper
    model = build_model(cfg)
    groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
    by_name = {name: g for g in groups for name in g['param_names']}
    stem, head = by_name['backbone.downsample_layers.0.conv1.weight'], by_name[
        'decode_head.query_feat.weight']
    assert stem['lr'] == pytest.approx(1e-4 * 0.1 * 0.9 ** 7) and stem['weight_decay'] == 0.05
    assert head['lr'] == pytest.approx(1e-4) and head['weight_decay'] == 0.0
    assert by_name['backbone.stages.2.8.norm.weight']['weight_decay'] == 0.0


# ------------------------------------------------------------------ FP16: why float32
def test_einsum_is_fp16_and_grid_sample_promotes_under_the_emulation():
    """CUDA autocast's lists: einsum in fp16, grid_sampler promoted to the widest input."""
    a, b = torch.randn(3, 4), torch.randn(5, 4)
    image, grid = torch.randn(1, 2, 8, 8).half(), torch.rand(1, 4, 4, 2) * 2 - 1
    with gpu_fp16_autocast():
        product = torch.einsum('nc,mc->nm', a, b)
        sampled = torch.nn.functional.grid_sample(image, grid, align_corners=False)
    assert product.dtype == torch.float16 and sampled.dtype == torch.float32
    torch.testing.assert_close(product.float(), a @ b.T, rtol=2e-3, atol=2e-3)


def point_costs() -> tuple:
    """The matcher of mask2former_mambaout_tiny_160k_ade20k.py (12544 points) and a case as a
    trained model gives it: a query confident (logit 12) over the 60% of the points where the
    image's large region is not, and the region's mask."""
    from mmdet.registry import TASK_UTILS
    from mmengine.structures import InstanceData
    cfg = Config.fromfile(recipe_config('tiny', '160k_ade20k'))
    train_cfg = cfg.model.decode_head.train_cfg
    costs = [TASK_UTILS.build({**c, 'type': c['type'].removeprefix('mmdet.')})
             for c in train_cfg.assigner.match_costs]
    points = train_cfg.num_points
    gt = torch.zeros(2, points)
    gt[0, :int(0.4 * points)] = 1  # the large region (40%)
    gt[1, :100] = 1  # a small object inside it
    logits = torch.full((3, points), -12.0)
    logits[0, int(0.4 * points):] = 12.0  # confident, and wrong for the large region
    logits[1, :int(0.4 * points)] = 12.0  # right for it
    preds = InstanceData(masks=logits, scores=torch.zeros(3, 5))
    gts = InstanceData(masks=gt, labels=torch.tensor([0, 1]))
    return costs, preds, gts, points


def test_the_matchers_mask_cost_overflows_in_fp16():
    """What fails later under AMP (mmdet issue #10909): CrossEntropyLossCost sums the point costs of
    all 12544 points in one einsum, which autocast computes in fp16, so a sum beyond 65504 is
    inf; the assigner's Hungarian matching then meets inf costs (``cost matrix is
    infeasible`` once a ground truth has no finite one). The dice cost stays finite."""
    (cls_cost, ce_cost, dice_cost), preds, gts, points = point_costs()
    assert points == 12544
    fp32 = ce_cost(preds, gts)
    with gpu_fp16_autocast():
        fp16 = ce_cost(preds, gts)
        dice = dice_cost(preds, gts)
    assert fp32.isfinite().all() and fp32.max() < 100  # a mean over points, times 5
    assert not fp16.isfinite().all()
    assert dice.isfinite().all()


def half_resize_on_cpu() -> None:
    """Skip, naming torch's error, where this torch has no CPU kernel for the fp16 resize the
    emulated head runs (torch 2.1: channels-last bilinear upsampling in Half)."""
    x = torch.ones(1, 2, 4, 4, dtype=torch.half).contiguous(memory_format=torch.channels_last)
    try:
        torch.nn.functional.interpolate(x, size=(8, 8), mode='bilinear', align_corners=False)
    except RuntimeError as err:
        pytest.skip(f'torch {torch.__version__} cannot resize fp16 on a CPU: {err}')


def test_the_mask_loss_is_averaged_over_an_fp16_count_that_overflows(tmp_path):
    """What fails at once under AMP (mmdet issue #10909): mmdet's Mask2Former head (mmseg's is
    it) counts the matched masks in a tensor made from the class scores (``new_tensor``), fp16
    under autocast, and averages the mask loss over that count times the 12544 points: from 6
    masks in a batch it is beyond 65504, and loss_mask is NaN in every decoder layer. The femto
    head at the recipe's point count, 2 images of 4 classes (8 masks): finite in float32, NaN
    under the FP16 emulation."""
    from mambaout_mm.benchmark.synthetic import ConfigModel
    half_resize_on_cpu()
    path = tmp_path / 'femto_12544_points.py'
    path.write_text(f"_base_ = {config(FEMTO['semantic'][0])!r}\n"
                    "model = dict(decode_head=dict(train_cfg=dict(num_points=12544)))\n")
    torch.manual_seed(0)
    model = ConfigModel(str(path))
    net = model.model.train()
    data = model.batch([2, 3, 128, 128], training=True)
    with torch.no_grad():
        torch.manual_seed(0)
        fp32 = net(**data, mode='loss')
        torch.manual_seed(0)
        with gpu_fp16_autocast():
            fp16 = net(**data, mode='loss')
    masks = [k for k in fp32 if k.endswith('loss_mask')]
    assert len(masks) == 4  # the last layer and the 3 before it
    assert all(fp32[k].isfinite() for k in masks)
    assert not any(fp16[k].isfinite() for k in masks)
    assert all(fp16[k].isfinite() for k in fp16 if k.endswith(('loss_cls', 'loss_dice')))


# ------------------------------------------------------------------ the femto configs
FEMTO = {'semantic': ('mask2former/mask2former_mambaout_femto_shapes.py', 'decode_head',
                      'num_classes'),
         'instance': ('mask2former/mask2former_mambaout_femto_shapes_instance.py',
                      'panoptic_head', 'num_things_classes')}


@pytest.mark.parametrize('task', FEMTO)
def test_femto_configs_predict_the_generators_classes(task):
    path, head, key = FEMTO[task]
    cfg = load_config(config(path))
    assert tuple(cfg.metainfo.classes) == SHAPE_CLASSES
    assert cfg.model[head][key] == len(SHAPE_CLASSES)
    assert cfg.model[head].loss_cls.class_weight == [1.0] * len(SHAPE_CLASSES) + [0.1]
    assert cfg.model.backbone.arch == 'femto' and cfg.model.backbone.init_cfg is None


FAST = ['default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
        'train_dataloader.batch_size=2', *IN_PROCESS_LOADERS]


@pytest.fixture(scope='module')
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('mask2former')
    make_ade_shapes(root / 'data' / 'ade_shapes', num_train=4, num_val=2)
    make_coco_shapes(root / 'data' / 'coco_shapes', num_train=4, num_val=2)
    return root


@pytest.mark.slow
@pytest.mark.parametrize('task,package', [('semantic', 'mmseg'), ('instance', 'mmdet')])
def test_the_toolboxs_own_train_py_accepts_the_config(workspace, task, package):
    """``mim train`` runs the toolbox's tools/train.py: it takes our config as it is (2
    iterations and its validation; half a minute each on 2 cores: ``slow``)."""
    import importlib.util
    train = Path(importlib.util.find_spec(package).origin).parent / '.mim' / 'tools' / 'train.py'
    work = workspace / 'work_dirs' / f'{package}_tool'
    run_tool(str(train), config(FEMTO[task][0]), '--work-dir', str(work), '--cfg-options',
             'train_cfg.max_iters=2', 'train_cfg.val_interval=2', *FAST, cwd=workspace)
    assert checkpoint_meta(work / 'iter_2.pth')['iter'] == 2


@pytest.mark.parametrize('path', [recipe_config(*c) for c in RECIPE_CONFIGS] + [
    config('mask2former/mask2former_mambaout_femto_shapes.py')], ids=lambda p: Path(p).stem)
def test_amp_on_a_gpu_is_refused_with_the_reason_unless_the_config_forces_it(path, monkeypatch):
    """The FP16 failures above are foreseen: --amp on a GPU stops before the run, naming them;
    on a CPU --amp is bfloat16 autocast (float32's range; not refused); a config that
    names AmpOptimWrapper itself is taken at its word. DINO's configs are not refused."""
    from mambaout_mm.engine.amp import setup_amp
    from mambaout_mm.utils.errors import RunSetupError
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    with pytest.raises(RunSetupError, match=r'--amp: this config trains in float32 because '
                                            r"mmdet's Mask2Former head .* issue #10909"):
        setup_amp(load_config(path), requested=True)
    assert setup_amp(load_config(path), requested=False) is None
    forced = load_config(path, {'optim_wrapper.type': 'AmpOptimWrapper'})
    assert 'fp16 autocast' in setup_amp(forced, requested=True)
    dino = load_config(config('dino/dino_mambaout_femto_shapes.py'))
    assert 'fp16 autocast' in setup_amp(dino, requested=True)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert 'fp16' not in setup_amp(load_config(path), requested=True)
