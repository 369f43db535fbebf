"""A trained Mask R-CNN or UperNet as a deployable folder: ONNX graphs plus ``manifest.json``
(:class:`mambaout_deploy.manifest.Manifest`, read by the torch-free deployment runtime
:mod:`mambaout_deploy`), made by ``tools/export_onnx.py --part end2end``.

The segmentor is one graph: normalised image -> class logits at the input size (its pyramid
pooling rewritten as pooling matrices computed from the input size, so one graph serves every
size). The detector is three graphs around two data-dependent steps: ``dense`` (normalised,
padded image -> FPN maps, RPN objectness and deltas), ``box_head`` (FPN maps, proposals -> class
scores and box deltas) and ``mask_head`` (FPN maps, detections -> mask logits). Proposal
selection, NMS and mask pasting run in the runtime (numpy, :mod:`mambaout_deploy.boxes`): their
output sizes depend on the data, which torch.export can only bound, and mmdet computes them with
mmcv's ops, which have no ONNX form in the dynamo exporter. RoIAlign is in the graphs (ONNX
``RoiAlign``, half-pixel, as mmcv's ``aligned=True``).
"""
from __future__ import annotations

import copy
import datetime
import os

import torch
from torch import nn

from mambaout_deploy.manifest import (
    Detection,
    Manifest,
    Preprocess,
    Rcnn,
    Rpn,
    Segmentation,
    read_manifest,
    write_manifest,
)

from .onnx_export import DetectorDense, ExportError, SegmentorLogits, channel_flip, export_graph


class AdaptiveAvgPool2dMatrix(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as two pooling matrices computed from the input's size (the
    traced module would keep the windows of the traced size)."""

    def __init__(self, output_size) -> None:
        super().__init__()
        size = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 2
        self.out_h, self.out_w = size

    @staticmethod
    def matrix(n: int, s: int, like: torch.Tensor) -> torch.Tensor:
        i = torch.arange(s, device=like.device).unsqueeze(1)
        j = torch.arange(n, device=like.device).unsqueeze(0)
        start, end = (i * n) // s, ((i + 1) * n + s - 1) // s
        window = ((j >= start) & (j < end)).to(like.dtype)
        return window / window.sum(1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph = self.matrix(x.shape[-2], self.out_h, x)
        pw = self.matrix(x.shape[-1], self.out_w, x)
        return ph @ x @ pw.transpose(0, 1)


def with_size_free_pooling(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose adaptive average pools hold for every input size."""
    module = copy.deepcopy(module)
    for name, child in list(module.named_modules()):
        if isinstance(child, nn.AdaptiveAvgPool2d):
            parent = module.get_submodule(name.rpartition('.')[0]) if '.' in name else module
            setattr(parent, name.rpartition('.')[2], AdaptiveAvgPool2dMatrix(child.output_size))
    return module


class RoIHeadGraph(nn.Module):
    """FPN maps and each level's boxes (the runtime maps every box to its level by mmdet's
    ``SingleRoIExtractor`` rule) -> a RoI head's outputs, level by level: the box head's class
    scores (R, K + 1) and deltas (R, 4K), or the mask head's logits (R, K, M, M). Pooling each
    box from its level only: mmcv's adaptive sampling makes a large box at a fine level costly."""

    def __init__(self, extractor: nn.Module, head: nn.Module) -> None:
        super().__init__()
        if len(extractor.featmap_strides) != 4:
            raise ExportError('End-to-end export pools RoIs from four FPN levels only.')
        layer = extractor.roi_layers[0]
        if getattr(layer, 'pool_mode', 'avg') != 'avg' or not getattr(layer, 'aligned', False):
            raise ExportError('Only RoIAlign with aligned=True and average pooling exports.')
        self.output_size = layer.output_size
        self.sampling_ratio = int(layer.sampling_ratio)
        self.strides = [float(s) for s in extractor.featmap_strides]
        self.head = head

    def forward(self, feature0: torch.Tensor, feature1: torch.Tensor, feature2: torch.Tensor,
                feature3: torch.Tensor, boxes0: torch.Tensor, boxes1: torch.Tensor,
                boxes2: torch.Tensor, boxes3: torch.Tensor):
        from torchvision.ops import roi_align
        pooled = [roi_align(f, torch.cat([torch.zeros_like(b[:, :1]), b], 1), self.output_size,
                            1.0 / stride, self.sampling_ratio, aligned=True)
                  for f, b, stride in zip((feature0, feature1, feature2, feature3),
                                          (boxes0, boxes1, boxes2, boxes3), self.strides)]
        return self.head(torch.cat(pooled))


def check_supported(model: nn.Module) -> str:
    """'segmentation' or 'detection', or an error naming what exports end to end."""
    if hasattr(model, 'decode_head') and hasattr(model, 'extract_feat'):
        if getattr(model.decode_head, 'align_corners', False):
            raise ExportError('End-to-end export resizes logits with align_corners=False only.')
        return 'segmentation'
    roi_head = getattr(model, 'roi_head', None)
    kinds = (type(getattr(model, 'rpn_head', None)).__name__, type(roi_head).__name__,
             type(getattr(roi_head, 'mask_head', None)).__name__)
    if kinds != ('RPNHead', 'StandardRoIHead', 'FCNMaskHead'):
        raise ExportError(
            f'End-to-end export takes UperNet-style segmentors and Mask R-CNN (RPNHead, '
            f'StandardRoIHead, FCNMaskHead); this model has {", ".join(kinds)} (Cascade Mask '
            f'R-CNN is not supported end to end). Export --part model or backbone instead.')
    coders = (model.rpn_head.bbox_coder, roi_head.bbox_head.bbox_coder)
    if any(type(c).__name__ != 'DeltaXYWHBBoxCoder' or c.add_ctr_clamp or not c.clip_border
           for c in coders):
        raise ExportError('End-to-end export decodes boxes as DeltaXYWHBBoxCoder with '
                          'clip_border=True and add_ctr_clamp=False only.')
    nms = {model.test_cfg.rpn.nms.type, model.test_cfg.rcnn.nms.type}
    if nms != {'nms'}:
        raise ExportError(f'End-to-end export runs plain NMS only; the config asks for {nms}.')
    if roi_head.bbox_head.reg_class_agnostic or roi_head.mask_head.class_agnostic:
        raise ExportError('End-to-end export takes class-specific box and mask heads only.')
    return 'detection'


def preprocess_settings(cfg, model: nn.Module) -> Preprocess:
    """The test pipeline's resize and the data preprocessor's normalisation and padding."""
    resize = [t for t in cfg.test_dataloader.dataset.pipeline if t['type'] == 'Resize']
    if len(resize) != 1 or 'scale' not in resize[0]:
        raise ExportError('End-to-end export needs one Resize(scale=...) in the test pipeline.')
    pre = model.data_preprocessor
    return Preprocess(scale=[int(s) for s in resize[0]['scale']],
                      keep_ratio=bool(resize[0].get('keep_ratio')),
                      mean=pre.mean.flatten().tolist(), std=pre.std.flatten().tolist(),
                      to_rgb=channel_flip(pre),
                      pad_size_divisor=int(getattr(pre, 'pad_size_divisor', 1) or 1))


def classes(cfg) -> list[str]:
    dataset = cfg.test_dataloader.dataset
    meta = dataset.get('metainfo') or {}
    if 'classes' in meta:
        return list(meta['classes'])
    from ..utils.config import toolbox_registry
    return list(toolbox_registry(cfg, 'DATASETS').get(dataset['type']).METAINFO['classes'])


def coder(c) -> dict:
    """The delta coder's settings; the heads decode with ``decode``'s default ratio clip."""
    import inspect
    clip = inspect.signature(type(c).decode).parameters['wh_ratio_clip'].default
    return dict(means=[float(v) for v in c.means], stds=[float(v) for v in c.stds],
                wh_ratio_clip=float(clip))


def export_end2end(model: nn.Module, cfg, folder: str, shape: tuple[int, int],
                   source: dict) -> Manifest:
    """Write the graphs and the manifest of ``model`` into ``folder``; the manifest."""
    task = check_supported(model)
    os.makedirs(folder, exist_ok=True)
    model = model.eval().float()
    h, w = shape
    image = torch.randn(1, 3, h, w)
    common = dict(task=task, classes=classes(cfg), preprocess=preprocess_settings(cfg, model),
                  source=dict(source, torch=torch.__version__,
                              exported=datetime.date.today().isoformat()))
    if task == 'segmentation':
        graph = SegmentorLogits(with_size_free_pooling(model), normalize=False)
        export_graph(graph, dict(image=image),
                     os.path.join(folder, 'segmentor.onnx'), dict(image=(2, 3)))
        manifest = Manifest(**common, graphs=dict(segmentor='segmentor.onnx'),
                            segmentation=Segmentation(reduce_zero_label=bool(
                                cfg.test_dataloader.dataset.get('reduce_zero_label', False))))
    else:
        manifest = Manifest(**common, **export_detector(model, folder, image))
    write_manifest(folder, manifest)
    return read_manifest(folder)


def export_detector(model: nn.Module, folder: str, image: torch.Tensor) -> dict:
    """The detector's graphs written; the manifest's ``graphs`` and ``detection``."""
    roi_head, rpn_head = model.roi_head, model.rpn_head
    dense = DetectorDense(model, normalize=False)
    export_graph(dense, dict(image=image), os.path.join(folder, 'dense.onnx'),
                 dict(image=(2, 3)))
    with torch.no_grad():
        outputs = dense(image)
    levels = len(rpn_head.prior_generator.strides)
    features = outputs[:len(outputs) - 2 * levels]
    roi_levels = len(roi_head.bbox_roi_extractor.featmap_strides)
    h, w = image.shape[2:]
    # 2, 3, 4, 5 boxes: distinct sizes, so the exporter keeps the four counts apart and free
    boxes = {f'boxes{i}': torch.tensor([[4. * j, 2. * j, w / (i + 1) - j, h / (i + 1)]
                                        for j in range(i + 2)]) for i in range(roi_levels)}
    feats = {f'feature{i}': f for i, f in enumerate(features[:roi_levels])}
    free = {name: (2, 3) for name in feats} | {name: (0,) for name in boxes}
    for name, graph in (
            ('box_head', RoIHeadGraph(roi_head.bbox_roi_extractor, roi_head.bbox_head)),
            ('mask_head', RoIHeadGraph(roi_head.mask_roi_extractor, roi_head.mask_head))):
        export_graph(graph, dict(feats, **boxes), os.path.join(folder, f'{name}.onnx'), free)
    gen = rpn_head.prior_generator
    test_cfg = model.test_cfg
    return dict(
        graphs=dict(dense='dense.onnx', box_head='box_head.onnx', mask_head='mask_head.onnx'),
        detection=Detection(
            features=len(features), roi_levels=roi_levels,
            finest_scale=dict(box_head=float(roi_head.bbox_roi_extractor.finest_scale),
                              mask_head=float(roi_head.mask_roi_extractor.finest_scale)),
            rpn=Rpn(strides=[float(s[0]) for s in gen.strides],
                    base_anchors=[a.tolist() for a in gen.base_anchors],
                    nms_pre=int(test_cfg.rpn.nms_pre), max_per_img=int(test_cfg.rpn.max_per_img),
                    iou_threshold=float(test_cfg.rpn.nms.iou_threshold),
                    min_bbox_size=float(test_cfg.rpn.get('min_bbox_size', -1)),
                    **coder(rpn_head.bbox_coder)),
            rcnn=Rcnn(score_thr=float(test_cfg.rcnn.score_thr),
                      iou_threshold=float(test_cfg.rcnn.nms.iou_threshold),
                      max_per_img=int(test_cfg.rcnn.max_per_img),
                      mask_thr_binary=float(test_cfg.rcnn.mask_thr_binary),
                      **coder(roi_head.bbox_head.bbox_coder))))
