"""Parameters and MACs of the model a config builds, counted the way the paper's tables are.

MACs come from mmengine's FLOP counter (one multiply-add counted once) on the model's tensor-mode
forward at the paper's input size: the whole detector (RPN proposals through the box and mask
heads) at 800x1280, the segmentor without its auxiliary head at 512x2048. Params count every
parameter of the built model, auxiliary head included, as Table 3 does.
"""
from __future__ import annotations

import logging
from functools import partial

import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.logging import MMLogger

from .runtime import build_model, load_config, toolbox

PAPER_SHAPES = {'mmdet': (800, 1280), 'mmseg': (512, 2048)}


def model_complexity(config: str, shape: tuple[int, int] | None = None,
                     cfg_options: dict | None = None) -> dict:
    """``dict(config, task, shape, params_m, macs_g)`` of the model ``config`` builds."""
    cfg = load_config(config, cfg_options)
    scope = toolbox(cfg)
    model = build_model(cfg).eval()
    params = sum(p.numel() for p in model.parameters())

    h, w = shape or PAPER_SHAPES[scope]
    inputs = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
                scale_factor=(1.0, 1.0))
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        samples = [DetDataSample(metainfo=meta)]
    else:
        from mmseg.structures import SegDataSample
        samples = [SegDataSample(metainfo=meta)]
        model.auxiliary_head = None  # not part of the test-time model
    model.forward = partial(model.forward, data_samples=samples, mode='tensor')
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # the counter warns about every module it does not count
    try:
        with torch.no_grad():
            result = get_model_complexity_info(model, inputs=inputs, show_table=False,
                                               show_arch=False)
    finally:
        logger.setLevel(level)
    return dict(config=config, task='det' if scope == 'mmdet' else 'seg', shape=[h, w],
                params_m=round(params / 1e6, 2), macs_g=round(result['flops'] / 1e9, 1))
