"""A trained model as a deployable folder: ONNX graphs plus ``manifest.json``
(:class:`mambaout_deploy.manifest.Manifest`, read by the torch-free deployment runtime
:mod:`mambaout_deploy`), made by ``tools/export_onnx.py --part end2end``. The heads
(:data:`mambaout_deploy.manifest.HEADS`):

- ``segmentor``: one graph, normalised image -> class scores at the input size: UperNet (its
  pyramid pooling rewritten as pooling matrices computed from the input size, so one graph serves
  every size) and Mask2Former's semantic head (the class scores as mmseg computes them from the
  queries, :mod:`.query_heads`).
- ``rcnn``, Mask R-CNN and Cascade Mask R-CNN: graphs around the data-dependent steps: ``dense``
  (normalised, padded image -> FPN maps, RPN objectness and deltas), and per stage ``box_head{i}``
  (FPN maps, boxes -> class scores and box deltas) and ``mask_head{i}`` (FPN maps, detections ->
  mask logits). RoIAlign is in the graphs (ONNX ``RoiAlign``, half-pixel, as mmcv's
  ``aligned=True``).
- ``retinanet``: one ``dense`` graph (image -> class scores and box deltas per level).
- ``dino``: one ``detector`` graph (image -> the last decoder layer's class logits and boxes;
  :mod:`.query_heads` makes its deformable attention free in height and width).
- ``mask2former`` (mmdet's, instances): one ``detector`` graph (image -> the last layer's class
  logits and mask logits at the padded input's size, :mod:`.query_heads`).

Proposal and top-k selection, NMS, a cascade's refinement and mask pasting run in the runtime
(numpy, :mod:`mambaout_deploy.boxes`): their output sizes depend on the data, which torch.export
can only bound, and mmdet computes them with mmcv's ops, which have no ONNX form in the dynamo
exporter.
"""
from __future__ import annotations

import copy
import datetime
import os

import torch
from torch import nn

from mambaout_deploy.manifest import (
    Anchors,
    BoxCoder,
    Dino,
    Manifest,
    Mask2Former,
    Preprocess,
    Rcnn,
    RetinaNet,
    RoiStage,
    Rpn,
    Segmentation,
    read_manifest,
    write_manifest,
)

from .onnx_export import (
    DENSE_HEADS,
    DetectorDense,
    ExportError,
    SegmentorLogits,
    channel_flip,
    export_graph,
)
from .query_heads import DinoQueries, Mask2FormerInstance, Mask2FormerSemantic


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


#: the RoI heads that export end to end, and the mask head of each stage
ROI_HEADS, MASK_HEAD = ('StandardRoIHead', 'CascadeRoIHead'), 'FCNMaskHead'


def stages(roi_head: nn.Module) -> list[tuple[nn.Module, nn.Module, nn.Module, nn.Module]]:
    """(box extractor, box head, mask extractor, mask head) of each stage of a RoI head."""
    if type(roi_head).__name__ == 'StandardRoIHead':
        return [(roi_head.bbox_roi_extractor, roi_head.bbox_head, roi_head.mask_roi_extractor,
                 roi_head.mask_head)]
    return list(zip(roi_head.bbox_roi_extractor, roi_head.bbox_head,
                    roi_head.mask_roi_extractor, roi_head.mask_head))


def check_supported(model: nn.Module) -> str:
    """The model's head (:data:`mambaout_deploy.manifest.HEADS`), or an error naming what
    exports end to end and why this model does not."""
    if hasattr(model, 'decode_head') and hasattr(model, 'extract_feat'):
        if getattr(model.decode_head, 'align_corners', False):
            raise ExportError('End-to-end export resizes logits with align_corners=False only.')
        mode = (model.test_cfg or {}).get('mode', 'whole')
        if mode != 'whole':
            raise ExportError(
                f"End-to-end export runs a segmentor on the whole image; this config infers in "
                f"'{mode}' windows (model.test_cfg.mode). Export it with --cfg-options "
                f"model.test_cfg.mode=whole (one graph over the whole image, as mmdeploy does), "
                f"or export --part model.")
        return 'segmentor'
    kind = type(model).__name__
    if type(getattr(model, 'bbox_head', None)).__name__ in DENSE_HEADS:
        check_coders(model.bbox_head.bbox_coder)
        check_nms(model.test_cfg.nms.type)
        if not model.bbox_head.use_sigmoid_cls:
            raise ExportError('End-to-end export takes RetinaNet with sigmoid class scores.')
        return 'retinanet'
    if kind == 'DINO':
        if not model.bbox_head.loss_cls.use_sigmoid:
            raise ExportError('End-to-end export takes DINO with sigmoid class scores.')
        if (getattr(model.data_preprocessor, 'pad_size_divisor', 1) or 1) > 1:
            raise ExportError('End-to-end export takes DINO without padding (its graph has no '
                              'padding mask): set model.data_preprocessor.pad_size_divisor=1, '
                              'as mmdet\'s DINO configs do.')
        return 'dino'
    if kind == 'Mask2Former':
        on = {k: model.test_cfg.get(f'{k}_on', False) for k in ('panoptic', 'semantic')}
        if any(on.values()):
            raise ExportError(f'End-to-end export takes mmdet\'s Mask2Former with instance '
                              f'results only; this config asks for {on} (set '
                              f'model.test_cfg.panoptic_on=False and semantic_on=False).')
        return 'mask2former'
    roi_head = getattr(model, 'roi_head', None)
    kinds = (type(getattr(model, 'rpn_head', None)).__name__, type(roi_head).__name__)
    if kinds[0] != 'RPNHead' or kinds[1] not in ROI_HEADS:
        raise ExportError(
            f'End-to-end export takes segmentors (UperNet, Mask2Former), Mask R-CNN and Cascade '
            f'Mask R-CNN (RPNHead and {" or ".join(ROI_HEADS)}), RetinaNet, DINO and mmdet\'s '
            f'Mask2Former; this {kind} has {", ".join(kinds)}. Export --part model or backbone '
            f'instead.')
    if not getattr(roi_head, 'with_mask', False):
        raise ExportError(f'End-to-end export takes {kind} with a mask head only.')
    for _, box_head, _, mask_head in stages(roi_head):
        if type(mask_head).__name__ != MASK_HEAD or mask_head.class_agnostic:
            raise ExportError(f'End-to-end export takes class-specific {MASK_HEAD}s only; this '
                              f'model has {type(mask_head).__name__}.')
        check_coders(box_head.bbox_coder)
    check_coders(model.rpn_head.bbox_coder)
    check_nms(model.test_cfg.rpn.nms.type, model.test_cfg.rcnn.nms.type)
    return 'rcnn'


def check_coders(*coders) -> None:
    if any(type(c).__name__ != 'DeltaXYWHBBoxCoder' or c.add_ctr_clamp or not c.clip_border
           for c in coders):
        raise ExportError('End-to-end export decodes boxes as DeltaXYWHBBoxCoder with '
                          'clip_border=True and add_ctr_clamp=False only.')


def check_nms(*kinds: str) -> None:
    if set(kinds) != {'nms'}:
        raise ExportError(f'End-to-end export runs plain NMS only; the config asks for '
                          f'{set(kinds)}.')


def preprocess_settings(cfg, model: nn.Module) -> Preprocess:
    """The test pipeline's loading and resize, the data preprocessor's normalisation and
    padding."""
    pipeline = cfg.test_dataloader.dataset.pipeline
    resize = [t for t in pipeline if t['type'] == 'Resize']
    if len(resize) != 1 or 'scale' not in resize[0]:
        raise ExportError('End-to-end export needs one Resize(scale=...) in the test pipeline.')
    pre = model.data_preprocessor
    return Preprocess(scale=[int(s) for s in resize[0]['scale']],
                      keep_ratio=bool(resize[0].get('keep_ratio')),
                      mean=pre.mean.flatten().tolist(), std=pre.std.flatten().tolist(),
                      to_rgb=channel_flip(pre),
                      pad_size_divisor=int(getattr(pre, 'pad_size_divisor', 1) or 1),
                      to_float32=any(t['type'] == 'LoadImageFromFile' and t.get('to_float32')
                                     for t in pipeline))


def classes(cfg) -> list[str]:
    dataset = cfg.test_dataloader.dataset
    meta = dataset.get('metainfo') or {}
    if 'classes' in meta:
        return list(meta['classes'])
    from ..utils.config import toolbox_registry
    return list(toolbox_registry(cfg, 'DATASETS').get(dataset['type']).METAINFO['classes'])


def coder(c) -> BoxCoder:
    """A delta coder's settings; the heads decode with ``decode``'s default ratio clip."""
    import inspect
    clip = inspect.signature(type(c).decode).parameters['wh_ratio_clip'].default
    return BoxCoder(means=[float(v) for v in c.means], stds=[float(v) for v in c.stds],
                    wh_ratio_clip=float(clip))


def anchors(generator) -> Anchors:
    return Anchors(strides=[float(s[0]) for s in generator.strides],
                   base_anchors=[a.tolist() for a in generator.base_anchors])


def export_end2end(model: nn.Module, cfg, folder: str, shape: tuple[int, int],
                   source: dict) -> Manifest:
    """Write the graphs and the manifest of ``model`` into ``folder``; the manifest."""
    head = check_supported(model)
    os.makedirs(folder, exist_ok=True)
    model = model.eval().float()
    names = classes(cfg)
    predicted = next((getattr(model, name) for name in ('decode_head', 'bbox_head', 'panoptic_head')
                      if getattr(model, name, None) is not None),
                     None) or stages(model.roi_head)[-1][1]
    predicted = predicted.num_classes
    if len(names) != predicted:
        raise ExportError(f'The dataset names {len(names)} classes and the model predicts '
                          f'{predicted}: set the metainfo classes of the test dataset (or the '
                          f'head\'s num_classes) so that they agree.')
    h, w = shape
    image = torch.randn(1, 3, h, w)
    common = dict(head=head, classes=names, preprocess=preprocess_settings(cfg, model),
                  source=dict(source, torch=torch.__version__,
                              exported=datetime.date.today().isoformat()))
    if head == 'segmentor':
        graph = (Mask2FormerSemantic(model) if type(model.decode_head).__name__ == 'Mask2FormerHead'
                 else SegmentorLogits(with_size_free_pooling(model), normalize=False))
        export_graph(graph, dict(image=image),
                     os.path.join(folder, 'segmentor.onnx'), dict(image=(2, 3)))
        manifest = Manifest(task='segmentation', **common,
                            graphs=dict(segmentor='segmentor.onnx'),
                            segmentation=Segmentation(reduce_zero_label=bool(
                                cfg.test_dataloader.dataset.get('reduce_zero_label', False))))
    else:
        export = dict(rcnn=export_rcnn, retinanet=export_retinanet, dino=export_dino,
                      mask2former=export_mask2former)[head]
        manifest = Manifest(task='detection', **common, **export(model, folder, image))
    write_manifest(folder, manifest)
    return read_manifest(folder)


def export_dense(model: nn.Module, folder: str, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The detector's ``dense`` graph written; its outputs on ``image``."""
    dense = DetectorDense(model, normalize=False)
    export_graph(dense, dict(image=image), os.path.join(folder, 'dense.onnx'),
                 dict(image=(2, 3)))
    with torch.no_grad():
        return dense(image)


def export_retinanet(model: nn.Module, folder: str, image: torch.Tensor) -> dict:
    """RetinaNet's graph written; the manifest's ``graphs`` and ``retinanet``."""
    export_dense(model, folder, image)
    head, test_cfg = model.bbox_head, model.test_cfg
    return dict(graphs=dict(dense='dense.onnx'), retinanet=RetinaNet(
        anchors=anchors(head.prior_generator), coder=coder(head.bbox_coder),
        nms_pre=int(test_cfg.get('nms_pre', -1)), score_thr=float(test_cfg.get('score_thr', 0)),
        min_bbox_size=float(test_cfg.get('min_bbox_size', -1)),
        iou_threshold=float(test_cfg.nms.iou_threshold), max_per_img=int(test_cfg.max_per_img)))


def export_dino(model: nn.Module, folder: str, image: torch.Tensor) -> dict:
    """DINO's graph written; the manifest's ``graphs`` and ``dino``."""
    export_graph(DinoQueries(model), dict(image=image), os.path.join(folder, 'detector.onnx'),
                 dict(image=(2, 3)))
    max_per_img = model.bbox_head.test_cfg.get('max_per_img', model.num_queries)
    return dict(graphs=dict(detector='detector.onnx'), dino=Dino(max_per_img=int(max_per_img)))


def export_mask2former(model: nn.Module, folder: str, image: torch.Tensor) -> dict:
    """mmdet's Mask2Former's graph written; the manifest's ``graphs`` and ``mask2former``."""
    export_graph(Mask2FormerInstance(model, upsample=True), dict(image=image),
                 os.path.join(folder, 'detector.onnx'), dict(image=(2, 3)))
    fusion = model.panoptic_fusion_head
    return dict(graphs=dict(detector='detector.onnx'), mask2former=Mask2Former(
        max_per_image=int(model.test_cfg.get('max_per_image', 100)),
        things=int(fusion.num_things_classes)))


def export_rcnn(model: nn.Module, folder: str, image: torch.Tensor) -> dict:
    """Mask R-CNN's or Cascade Mask R-CNN's graphs written; the manifest's ``graphs`` and
    ``rcnn``."""
    roi_head, rpn_head = model.roi_head, model.rpn_head
    outputs = export_dense(model, folder, image)
    levels = len(rpn_head.prior_generator.strides)
    features = outputs[:len(outputs) - 2 * levels]
    heads = stages(roi_head)
    roi_levels = len(heads[0][0].featmap_strides)
    h, w = image.shape[2:]
    # 2, 3, 4, 5 boxes: distinct sizes, so the exporter keeps the four counts apart and free
    boxes = {f'boxes{i}': torch.tensor([[4. * j, 2. * j, w / (i + 1) - j, h / (i + 1)]
                                        for j in range(i + 2)]) for i in range(roi_levels)}
    feats = {f'feature{i}': f for i, f in enumerate(features[:roi_levels])}
    free = {name: (2, 3) for name in feats} | {name: (0,) for name in boxes}
    graphs = dict(dense='dense.onnx')
    for i, (box_extractor, box_head, mask_extractor, mask_head) in enumerate(heads):
        if (len(mask_extractor.featmap_strides) != roi_levels
                or mask_extractor.finest_scale != box_extractor.finest_scale):
            raise ExportError('End-to-end export maps RoIs to FPN levels one way for every RoI '
                              'head (the same featmap_strides and finest_scale).')
        for name, graph in ((f'box_head{i}', RoIHeadGraph(box_extractor, box_head)),
                            (f'mask_head{i}', RoIHeadGraph(mask_extractor, mask_head))):
            export_graph(graph, dict(feats, **boxes), os.path.join(folder, f'{name}.onnx'), free)
            graphs[name] = f'{name}.onnx'
    test_cfg = model.test_cfg
    return dict(graphs=graphs, rcnn=Rcnn(
        features=len(features), roi_levels=roi_levels,
        rpn=Rpn(anchors=anchors(rpn_head.prior_generator), coder=coder(rpn_head.bbox_coder),
                nms_pre=int(test_cfg.rpn.nms_pre), max_per_img=int(test_cfg.rpn.max_per_img),
                iou_threshold=float(test_cfg.rpn.nms.iou_threshold),
                min_bbox_size=float(test_cfg.rpn.get('min_bbox_size', -1))),
        stages=[RoiStage(coder=coder(box_head.bbox_coder),
                         class_agnostic=bool(box_head.reg_class_agnostic),
                         finest_scale=float(box_extractor.finest_scale))
                for box_extractor, box_head, _, _ in heads],
        score_thr=float(test_cfg.rcnn.score_thr),
        iou_threshold=float(test_cfg.rcnn.nms.iou_threshold),
        max_per_img=int(test_cfg.rcnn.max_per_img),
        mask_thr_binary=float(test_cfg.rcnn.mask_thr_binary)))
