"""Query-based models (DINO; Mask2Former, semantic in mmseg and instance in mmdet) as one ONNX
graph each, free in height and width.

mmdet and mmseg describe the multi-scale feature maps to the deformable attention as a
``spatial_shapes`` tensor built from the maps' sizes, and mmcv's PyTorch form of the attention
(``multi_scale_deformable_attn_pytorch``, what runs on a CPU) iterates over it: under
``torch.export`` its values are data, not the sizes they came from. mmdet's encoder reference
points and DINO's encoder proposals also count ``torch.linspace`` steps and build
``new_tensor`` from the sizes, which bakes in the traced size without a word. Under
:func:`size_free_shapes` the shapes travel instead as a list of ``(h, w)`` Python ints (symbolic
under export) through the models' own modules; four small functions take over the shape
bookkeeping: the attention's forward (the sampling itself stays mmcv's), the encoder's reference
points, DINO's proposals and the Mask2Former pixel decoder's forward.

The graphs take one normalised image (1, 3, H, W) and assume no padding mask, as mmdet and mmseg
do for a batch whose images fill it (DINO pads to no multiple; Mask2Former never masks padding).
torch.export keeps the coarsest feature map at least 2 x 2: H, W >= 65 for DINO (strides to 64),
>= 33 for Mask2Former (strides to 32).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .onnx_export import ExportError

#: Each level's (height, width), Python ints (symbolic under ``torch.export``).
Shapes = Sequence[tuple[int, int]]


def _sizes(*sizes: int, like: Tensor) -> Tensor:
    """Ints as a 1-D tensor of ``like``'s dtype and device, built with ``torch.full`` so that
    symbolic sizes stay symbolic (``torch.tensor`` of them bakes in the traced values)."""
    return torch.stack([torch.full((), s, dtype=like.dtype, device=like.device) for s in sizes])


def _flatten(maps: Sequence[Tensor]) -> Tensor:
    """(N, C, h, w) maps -> (N, sum of h * w, C)."""
    return torch.cat([m.flatten(2).transpose(1, 2) for m in maps], 1)


def _deformable_attention(self: nn.Module, query: Tensor, key: Tensor | None = None,
                          value: Tensor | None = None, identity: Tensor | None = None,
                          query_pos: Tensor | None = None,
                          key_padding_mask: Tensor | None = None,
                          reference_points: Tensor | None = None,
                          spatial_shapes: Shapes | Tensor | None = None,
                          level_start_index: Tensor | None = None, **kwargs) -> Tensor:
    """mmcv's ``MultiScaleDeformableAttention.forward`` with ``spatial_shapes`` as a list of
    ``(h, w)`` ints, sampling with its PyTorch form whatever the device; a tensor of shapes goes
    to mmcv's own forward."""
    from mmcv.ops import multi_scale_deform_attn as msda
    if isinstance(spatial_shapes, Tensor):
        return type(self).forward(self, query, key, value, identity, query_pos, key_padding_mask,
                                  reference_points, spatial_shapes, level_start_index, **kwargs)
    value = query if value is None else value
    identity = query if identity is None else identity
    if query_pos is not None:
        query = query + query_pos
    if not self.batch_first:
        query, value = query.permute(1, 0, 2), value.permute(1, 0, 2)
    bs, num_query, _ = query.shape
    num_value = value.shape[1]
    heads, levels, points = self.num_heads, self.num_levels, self.num_points
    value = self.value_proj(value)
    if key_padding_mask is not None:
        value = value.masked_fill(key_padding_mask[..., None], 0.0)
    value = value.view(bs, num_value, heads, -1)
    offsets = self.sampling_offsets(query).view(bs, num_query, heads, levels, points, 2)
    weights = self.attention_weights(query).view(bs, num_query, heads, levels * points)
    weights = weights.softmax(-1).view(bs, num_query, heads, levels, points)
    if reference_points.shape[-1] == 2:  # points: offsets in pixels of each level
        normalizer = torch.stack([_sizes(w, h, like=offsets) for h, w in spatial_shapes])
        locations = (reference_points[:, :, None, :, None, :]
                     + offsets / normalizer[None, None, None, :, None, :])
    else:  # boxes (cx, cy, w, h): offsets in halves of the box over the number of points
        locations = (reference_points[:, :, None, :, None, :2]
                     + offsets / points * reference_points[:, :, None, :, None, 2:] * 0.5)
    output = msda.multi_scale_deformable_attn_pytorch(value, spatial_shapes, locations, weights)
    output = self.output_proj(output)
    if not self.batch_first:
        output = output.permute(1, 0, 2)
    return self.dropout(output) + identity


def _encoder_reference_points(spatial_shapes: Shapes, valid_ratios: Tensor,
                              device: torch.device | str) -> Tensor:
    """``DeformableDetrTransformerEncoder.get_encoder_reference_points`` for shapes as ints:
    each feature point's centre, (x, y) over the valid size, for every level. mmdet's
    ``torch.linspace(0.5, h - 0.5, h)`` is ``arange(h) + 0.5`` exactly, and ``arange`` keeps a
    symbolic ``h`` symbolic (``linspace`` bakes in its number of steps)."""
    points = []
    for level, (h, w) in enumerate(spatial_shapes):
        y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=device) + 0.5,
                              torch.arange(w, dtype=torch.float32, device=device) + 0.5,
                              indexing='ij')
        points.append(torch.stack([x.reshape(1, -1) / (valid_ratios[:, None, level, 0] * w),
                                   y.reshape(1, -1) / (valid_ratios[:, None, level, 1] * h)],
                                  -1))
    return torch.cat(points, 1)[:, :, None] * valid_ratios[:, None]


def _encoder_proposals(detector: nn.Module, memory: Tensor, memory_mask: Tensor | None,
                       spatial_shapes: Shapes) -> tuple[Tensor, Tensor]:
    """``DeformableDETR.gen_encoder_output_proposals`` without a padding mask, for shapes as
    ints: the transformed memory and each feature point's proposal (centred on it, w = h =
    0.05 * 2 ** level, as logits; infinite where not within 0.01-0.99, its memory zeroed)."""
    if memory_mask is not None:
        raise ExportError('The exported DINO takes images without a padding mask.')
    proposals = []
    for level, (h, w) in enumerate(spatial_shapes):
        y, x = torch.meshgrid(torch.arange(h, dtype=memory.dtype, device=memory.device),
                              torch.arange(w, dtype=memory.dtype, device=memory.device),
                              indexing='ij')
        centres = (torch.stack([x, y], -1) + 0.5) / _sizes(w, h, like=memory)
        centres = centres.reshape(1, -1, 2).expand(memory.shape[0], -1, -1)
        proposals.append(torch.cat([centres, torch.full_like(centres, 0.05 * 2.0 ** level)], -1))
    proposals = torch.cat(proposals, 1)
    valid = ((proposals > 0.01) & (proposals < 0.99)).sum(-1, keepdim=True) == 4
    proposals = torch.log(proposals / (1 - proposals)).masked_fill(~valid, float('inf'))
    memory = memory.masked_fill(~valid, 0.0)
    return detector.memory_trans_norm(detector.memory_trans_fc(memory)), proposals


def _pixel_decoder(decoder: nn.Module, feats: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """``MSDeformAttnPixelDecoder.forward`` (mmdet's, which mmseg's Mask2Former uses too) with the
    levels' shapes as ints and without its all-False padding mask (it masks no key)."""
    levels, inputs = decoder.num_encoder_levels, decoder.num_input_levels
    projected, pos, points, shapes = [], [], [], []
    for i in range(levels):  # from the coarsest
        index = inputs - i - 1
        feat = feats[index]
        h, w = feat.shape[-2:]
        projected.append(decoder.input_convs[i](feat))
        unmasked = feat.new_zeros((feat.shape[0], h, w), dtype=torch.bool)
        pos.append(decoder.postional_encoding(unmasked)
                   + decoder.level_encoding.weight[i].view(1, -1, 1, 1))
        stride = decoder.strides[index]
        grid = decoder.point_generator.single_level_grid_priors((h, w), index, device=feat.device)
        points.append(grid / _sizes(w * stride, h * stride, like=grid))
        shapes.append((h, w))
    batch = feats[0].shape[0]
    reference_points = torch.cat(points)[None, :, None].repeat(batch, 1, levels, 1)
    memory = decoder.encoder(query=_flatten(projected), query_pos=_flatten(pos),
                             key_padding_mask=None, spatial_shapes=shapes,
                             reference_points=reference_points, level_start_index=None,
                             valid_ratios=reference_points.new_ones((batch, levels, 2)))
    outs = [m.transpose(1, 2).reshape(batch, -1, h, w)
            for m, (h, w) in zip(memory.split([h * w for h, w in shapes], 1), shapes)]
    for i in range(inputs - levels - 1, -1, -1):  # the finer levels, FPN-like
        lateral = decoder.lateral_convs[i](feats[i])
        outs.append(decoder.output_convs[i](lateral + F.interpolate(
            outs[-1], size=lateral.shape[-2:], mode='bilinear', align_corners=False)))
    return decoder.mask_feature(outs[-1]), outs[:decoder.num_outs]


@contextlib.contextmanager
def size_free_shapes(model: nn.Module) -> Iterator[None]:
    """While it lasts, ``model``'s deformable attentions, Deformable DETR encoders' reference
    points, (DINO) encoder proposals and (Mask2Former) pixel decoders take the levels' shapes as
    a list of ``(h, w)`` ints, instance by instance (the classes stay as they are; nested uses
    leave the outer one's in place)."""
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttention
    from mmdet.models.layers import DeformableDetrTransformerEncoder, MSDeformAttnPixelDecoder

    def bind(function, module: nn.Module):
        return lambda *args, **kwargs: function(module, *args, **kwargs)

    patches = []
    for module in model.modules():
        if isinstance(module, MultiScaleDeformableAttention):
            patches.append((module, 'forward', bind(_deformable_attention, module)))
        elif isinstance(module, MSDeformAttnPixelDecoder):
            patches.append((module, 'forward', bind(_pixel_decoder, module)))
        elif isinstance(module, DeformableDetrTransformerEncoder):
            patches.append((module, 'get_encoder_reference_points', _encoder_reference_points))
        if hasattr(type(module), 'gen_encoder_output_proposals'):
            patches.append((module, 'gen_encoder_output_proposals',
                            bind(_encoder_proposals, module)))
    patches = [p for p in patches if p[1] not in vars(p[0])]
    for module, name, function in patches:
        setattr(module, name, function)
    try:
        yield
    finally:
        for module, name, _ in patches:
            delattr(module, name)


class DinoQueries(nn.Module):
    """Normalised image (1, 3, H, W) -> the last decoder layer's class logits (Q, K) and boxes
    (Q, 4: cx, cy, w, h over the image's width and height): what ``DINOHead.predict`` decodes
    (sigmoid, the top ``max_per_img`` of queries x classes, to corners times the image size,
    clipped to it, over the scale factor)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        d = self.detector
        maps = d.extract_feat(image)
        shapes = [(m.shape[2], m.shape[3]) for m in maps]
        pos = [d.positional_encoding(None, input=m) + d.level_embed[i].view(1, -1, 1, 1)
               for i, m in enumerate(maps)]
        valid_ratios = maps[0].new_ones(maps[0].shape[0], len(maps), 2)
        with size_free_shapes(d):
            encoded = d.forward_encoder(feat=_flatten(maps), feat_mask=None,
                                        feat_pos=_flatten(pos), spatial_shapes=shapes,
                                        level_start_index=None, valid_ratios=valid_ratios)
            decoder_inputs, _ = d.pre_decoder(**encoded, batch_data_samples=None)
            decoded = d.forward_decoder(**decoder_inputs, memory_mask=None, spatial_shapes=shapes,
                                        level_start_index=None, valid_ratios=valid_ratios)
        classes, boxes = d.bbox_head(decoded['hidden_states'], decoded['references'])
        return classes[-1, 0], boxes[-1, 0]


class Mask2FormerSemantic(nn.Module):
    """Normalised image (1, 3, H, W) -> class scores (1, K, H, W), as mmseg's
    ``Mask2FormerHead.predict``: the last layer's mask logits resized to the input, their
    sigmoid weighted by each query's class softmax without the no-object class."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, image: Tensor) -> Tensor:
        head = self.segmentor.decode_head
        with size_free_shapes(head):
            classes, masks = head(self.segmentor.extract_feat(image), [])
        masks = F.interpolate(masks[-1], size=image.shape[2:], mode='bilinear',
                              align_corners=False)
        return torch.einsum('bqc,bqhw->bchw', classes[-1].softmax(-1)[..., :-1], masks.sigmoid())


class Mask2FormerInstance(nn.Module):
    """Normalised, padded image (1, 3, H, W) -> the last layer's class logits (Q, K + 1) and mask
    logits (Q, H / 4, W / 4; with ``upsample``, (Q, H, W) as mmdet's ``Mask2FormerHead.predict``
    resizes them, bilinearly), for ``MaskFormerFusionHead``'s crop, resize and
    ``instance_postprocess``."""

    def __init__(self, detector: nn.Module, upsample: bool = False) -> None:
        super().__init__()
        self.detector = detector
        self.upsample = upsample

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        head = self.detector.panoptic_head
        with size_free_shapes(head):
            classes, masks = head(self.detector.extract_feat(image), [])
        masks = masks[-1]
        if self.upsample:
            masks = F.interpolate(masks, size=image.shape[2:], mode='bilinear',
                                  align_corners=False)
        return classes[-1][0], masks[0]


def query_network(model: nn.Module) -> nn.Module:
    """The exportable graph module of a built DINO, mmseg Mask2Former or mmdet Mask2Former."""
    kind = type(model).__name__
    if kind == 'DINO':
        return DinoQueries(model)
    if kind == 'Mask2Former' and hasattr(model, 'panoptic_head'):
        return Mask2FormerInstance(model)
    if type(getattr(model, 'decode_head', None)).__name__ == 'Mask2FormerHead':
        return Mask2FormerSemantic(model)
    raise ExportError(f'{kind} is not a query-based model exported here: DINO and Mask2Former '
                      f'(mmseg semantic, mmdet instance) are.')
