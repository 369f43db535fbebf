"""Learning-rate decay for MambaOut: the lr each parameter gets, against mmdet's ConvNeXt rule."""
import pytest
from mmengine.optim import build_optim_wrapper

from mambaout_mm.utils.config import build_model, load_config

from .tools_helpers import config


def optim_cfg(constructor: str, decay_type: str = 'layer_wise', num_layers: int = 6) -> dict:
    return dict(type='OptimWrapper', constructor=constructor,
                optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
                paramwise_cfg=dict(decay_rate=0.8, decay_type=decay_type, num_layers=num_layers))


def lr_by_name(wrapper) -> dict[str, tuple[float, float]]:
    groups = wrapper.optimizer.param_groups
    return {name: (g['lr'], g['weight_decay']) for g in groups for name in g['param_names']}


@pytest.fixture(scope='module')
def detector():
    """The femto Mask R-CNN (stage 2 of 9 blocks, as tiny), in mmdet's scope."""
    return build_model(load_config(config('mask_rcnn/mask_rcnn_mambaout_femto_shapes.py')))


@pytest.mark.parametrize('decay_type', ['layer_wise', 'stage_wise'])
def test_each_parameter_gets_the_lr_mmdet_gives_convnext(detector, decay_type, monkeypatch):
    ours = lr_by_name(build_optim_wrapper(detector, optim_cfg('MambaOutLearningRateDecay',
                                                              decay_type)))
    assert set(ours) == {n for n, p in detector.named_parameters() if p.requires_grad}
    # mmdet's constructor accepts only backbones named ConvNeXt ...
    with pytest.raises(NotImplementedError):
        build_optim_wrapper(detector, optim_cfg('LearningRateDecayOptimizerConstructor',
                                                decay_type))
    # ... and, told ours is one, gives every parameter the same lr and weight decay as ours.
    backbone = detector.backbone
    monkeypatch.setattr(backbone, '__class__', type('ConvNeXtNamed', (type(backbone),), {}))
    theirs = lr_by_name(build_optim_wrapper(detector, optim_cfg(
        'LearningRateDecayOptimizerConstructor', decay_type)))
    assert ours == theirs
    assert ours['backbone.downsample_layers.0.conv1.weight'][0] < ours[
        'backbone.stages.3.0.fc1.weight'][0] < ours['rpn_head.rpn_conv.weight'][0] == 1e-3


def test_num_layers_must_fit_the_backbone(detector):
    with pytest.raises(ValueError, match=r'num_layers must be 6 .* 9 blocks in stage 2'):
        build_optim_wrapper(detector, optim_cfg('MambaOutLearningRateDecay', num_layers=12))


def test_a_segmentor_gets_it_from_mmsegs_registry():
    segmentor = build_model(load_config(config('upernet/upernet_mambaout_femto_shapes.py')))
    lrs = lr_by_name(build_optim_wrapper(segmentor, optim_cfg('MambaOutLearningRateDecay')))
    assert lrs['decode_head.conv_seg.weight'][0] == 1e-3
    assert lrs['backbone.stages.2.8.fc1.weight'][0] == pytest.approx(1e-3 * 0.8 ** 2)  # layer 5


def test_custom_keys_multiply_the_decayed_lr_as_a_detr_recipe_needs():
    """DINO's recipe gives the backbone a tenth of the lr (custom_keys); with layer-wise decay on
    top (the DINO configs' comment), and with that tenth set back to 1 (InternImage's DINO)."""
    dino = build_model(load_config(config('dino/dino_mambaout_femto_shapes.py')))
    stem, block, head = ('backbone.downsample_layers.0.conv1.weight',
                         'backbone.stages.2.8.fc1.weight', 'bbox_head.cls_branches.0.weight')
    for backbone_mult in (0.1, 1.0):
        cfg = optim_cfg('MambaOutLearningRateDecay')
        cfg['paramwise_cfg']['custom_keys'] = {'backbone': dict(lr_mult=backbone_mult),
                                               'bbox_head': dict(decay_mult=0.5)}
        lrs = lr_by_name(build_optim_wrapper(dino, cfg))
        assert lrs[head] == (1e-3, 0.05 * 0.5)
        assert lrs[block][0] == pytest.approx(1e-3 * backbone_mult * 0.8 ** 2)
        assert lrs[stem][0] == pytest.approx(1e-3 * backbone_mult * 0.8 ** 7)
        assert lrs['bbox_head.cls_branches.0.bias'][1] == 0.  # no decay on biases, whatever mult
