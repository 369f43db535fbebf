"""The backbone's maps against what reads them (mambaout_mm.engine.model_layout): a config whose
parts disagree fails when it is loaded, naming both settings and what to set."""
from __future__ import annotations

import pytest

from mambaout_mm.engine.model_layout import check_model_layout
from mambaout_mm.utils.config import load_config
from mambaout_mm.utils.errors import ConfigError

from .tools_helpers import REPO, config

DET = config('mask_rcnn/mask_rcnn_mambaout_femto_shapes.py')
SEG = config('upernet/upernet_mambaout_femto_shapes.py')


def refused(path: str, **options) -> str:
    cfg = load_config(path, options)
    with pytest.raises(ConfigError) as raised:
        check_model_layout(cfg)
    return str(raised.value)


@pytest.mark.parametrize('path', sorted(str(p) for p in (REPO / 'configs').rglob('*.py')))
def test_every_packaged_config_fits_together(path):
    """Every neck and head of the packaged configs (Mask R-CNN, Cascade, UperNet, RetinaNet, DINO,
    Mask2Former; the peers' ResNet and Swin) reads what its backbone gives."""
    check_model_layout(load_config(path))


def test_fewer_maps_than_the_neck_takes_names_both_settings():
    message = refused(DET, **{'model.backbone.out_indices': (0, 1, 2)})
    assert 'model.backbone.out_indices=(0, 1, 2) (MambaOut-femto: maps of [48, 96, 192] ' \
           'channels) gives 3 maps, but model.neck (FPN) takes 4' in message
    assert 'model.neck.in_channels=[48, 96, 192, 288]' in message
    assert 'set model.neck.in_channels=[48, 96, 192]' in message


def test_channels_of_another_variant_name_the_channels_to_set():
    message = refused(DET, **{'model.backbone.arch': 'tiny'})
    assert 'model.neck (FPN) expects maps of [48, 96, 192, 288] channels' in message
    assert 'MambaOut-tiny: maps of [96, 192, 384, 576] channels' in message
    assert 'set model.neck.in_channels=[96, 192, 384, 576]' in message


def test_an_fpn_that_leaves_a_map_unread_is_refused():
    """FPN start_level=1 over four maps: stage 0's output norm gets no gradient (mmdet #6621)."""
    message = refused(DET, **{'model.neck.start_level': 1})
    assert 'gives map(s) [0] (stage(s) (0,)) that no module reads' in message
    assert 'model.neck.start_level=1' in message and 'distributed training' in message
    assert ('set model.backbone.out_indices=(1, 2, 3) with model.neck.in_channels=[96, 192, 288], '
            'start_level=0 and end_level=-1') in message
    assert 'or model.neck.start_level=0 and end_level=-1 to read them all' in message
    # the way out it names passes
    check_model_layout(load_config(DET, {'model.backbone.out_indices': (1, 2, 3),
                                         'model.neck.in_channels': [96, 192, 288]}))
    message = refused(DET, **{'model.neck.end_level': 2})
    assert 'gives map(s) [3] (stage(s) (3,))' in message


def test_segmentation_heads_read_the_maps_their_in_index_names():
    check_model_layout(load_config(SEG))
    message = refused(SEG, **{'model.backbone.out_indices': (0, 1, 2)})
    assert 'model.decode_head (UPerHead) reads map(s) [3]' in message
    assert 'model.decode_head.in_index=[0, 1, 2, 3]' in message
    assert 'gives 3 maps (0 to 2)' in message
    message = refused(SEG, **{'model.auxiliary_head.in_channels': 96})
    assert 'model.auxiliary_head (FCNHead) expects maps of [96] channels' in message
    assert 'set model.auxiliary_head.in_channels=192' in message
    message = refused(SEG, **{'model.decode_head.in_index': [1, 2, 3],
                              'model.decode_head.in_channels': [96, 192, 288]})
    assert 'gives map(s) [0] (stage(s) (0,)) that no module reads' in message
    assert 'model.auxiliary_head.in_index=2' in message  # every reader is named


def test_a_head_without_neck_and_a_channel_mapper_are_read_from_the_config(tmp_path):
    """What the next heads use: Mask2Former's head reads the maps itself, DINO a ChannelMapper."""
    head = tmp_path / 'mask2former_like.py'
    head.write_text(f"_base_ = {DET!r}\nmodel = dict(neck=None, rpn_head=None, roi_head=None, "
                    f"panoptic_head=dict(type='Mask2FormerHead', in_channels=[48, 96, 192]))\n")
    assert 'model.panoptic_head (Mask2FormerHead) takes 3' in refused(str(head))
    mapper = tmp_path / 'channel_mapper.py'
    mapper.write_text(f"_base_ = {DET!r}\nmodel = dict(backbone=dict(out_indices=(1, 2, 3)), "
                      f"neck=dict(_delete_=True, type='ChannelMapper', "
                      f"in_channels=[96, 192, 288], out_channels=64))\n")
    check_model_layout(load_config(str(mapper)))
    message = refused(str(mapper), **{'model.neck.in_channels': [96, 192, 384]})
    assert 'model.neck (ChannelMapper) expects maps of [96, 192, 384] channels' in message
