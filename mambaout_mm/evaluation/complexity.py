"""Parameters and MACs of the model a config builds, counted the way the paper's tables are.

MACs come from mmengine's FLOP counter (one multiply-add counted once) on the model's tensor-mode
forward at the papers' input sizes: the whole detector (RPN proposals through the box and mask
heads) at 800x1280, the segmentor without its auxiliary head at its crop's height and four times
that width (512x2048 for 512x512 crops, as Table 3; 640x2560 for 640x640, as ConvNeXt's and Swin's
tables). Params count every parameter of the built model, auxiliary head included, as Table 3 does.

A Cascade detector is counted as the published figures were (mmdet 2.x's ``forward_dummy``): every
stage's box head on all proposals, every stage's mask head on the first 100 of them, as mmdet 3.x's
StandardRoIHead (Mask R-CNN) still does; mmdet 3.x's Cascade tensor-mode forward runs the mask heads
on all 1000 proposals, nearly three times the MACs of the same model.
"""
from __future__ import annotations

import inspect
import logging
from functools import partial
from types import MethodType

import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config
from mmengine.logging import MMLogger

from ..utils.config import TASKS, build_model, load_config, toolbox

DETECTION_SHAPE = (800, 1280)


def paper_shape(cfg: Config) -> tuple[int, int]:
    """The input size the papers count a config's model at."""
    if toolbox(cfg) == 'mmdet':
        return DETECTION_SHAPE
    crop = cfg.model.get('data_preprocessor', {}).get('size') or cfg.get('crop_size') or (512, 512)
    return crop[0], 4 * crop[0]


def cascade_forward_as_published(head, x: tuple[torch.Tensor, ...], rpn_results_list: list,
                                 batch_data_samples: list) -> tuple[torch.Tensor, ...]:
    """A CascadeRoIHead's forward as mmdet 2.x's ``forward_dummy`` ran it (see above)."""
    from mmdet.structures.bbox import bbox2roi
    rois = bbox2roi([proposals.bboxes for proposals in rpn_results_list])
    outs = ()
    for stage in range(head.num_stages):
        boxes = head._bbox_forward(stage, x, rois)
        outs += (boxes['cls_score'], boxes['bbox_pred'])
    if head.with_mask:
        for stage in range(head.num_stages):
            outs += (head._mask_forward(stage, x, rois[:100])['mask_preds'],)
    return outs


def model_complexity(config: str, shape: tuple[int, int] | None = None,
                     cfg_options: dict | None = None) -> dict:
    """``dict(config, task, shape, params_m, macs_g)`` of the model ``config`` builds."""
    cfg = load_config(config, cfg_options)
    scope = toolbox(cfg)
    model = build_model(cfg).eval()
    params = sum(p.numel() for p in model.parameters())

    h, w = shape or paper_shape(cfg)
    inputs = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
                scale_factor=(1.0, 1.0))
    if scope == 'mmdet':
        from mmdet.models.roi_heads import CascadeRoIHead
        from mmdet.structures import DetDataSample
        samples = [DetDataSample(metainfo=meta)]
        if isinstance(getattr(model, 'roi_head', None), CascadeRoIHead):
            model.roi_head.forward = MethodType(cascade_forward_as_published, model.roi_head)
    else:
        from mmseg.structures import SegDataSample
        samples = [SegDataSample(metainfo=meta)]
        model.auxiliary_head = None  # not part of the test-time model
        head = model.decode_head
        if 'batch_data_samples' in inspect.signature(head.forward).parameters:
            # Mask2Former's head needs the image shapes EncoderDecoder's tensor mode leaves out
            model.forward = lambda x, **_: head.forward(model.extract_feat(x), samples)
    model.forward = partial(model.forward, data_samples=samples, mode='tensor')
    return dict(config=config, task=TASKS[scope], shape=[h, w],
                params_m=round(params / 1e6, 2), macs_g=round(macs(model, inputs) / 1e9, 1))


def macs(model: torch.nn.Module, inputs: torch.Tensor) -> float:
    """Multiply-adds of ``model(inputs)`` by mmengine's FLOP counter (the one count every tool
    uses: a multiply-add counted once)."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # the counter warns about every module it does not count
    try:
        with torch.no_grad():
            return float(get_model_complexity_info(model, inputs=inputs, show_table=False,
                                                   show_arch=False)['flops'])
    finally:
        logger.setLevel(level)
