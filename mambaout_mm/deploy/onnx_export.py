"""A config's network as an ONNX graph, checked in ONNX Runtime against PyTorch.

What exports (``PARTS``): the backbone alone; a segmentor end to end (image in, per-pixel class
logits out, normalisation included); a detector's dense part (image in; out, a two-stage one's FPN
maps and its RPN's per-level objectness and box deltas, a one-stage one's per-level class scores
and box deltas): proposals, RoIAlign and NMS stay in PyTorch and mmcv here. The whole model,
pre- and post-processing included, is ``--part end2end`` (:mod:`.end2end`).
The exporter is torch's dynamo-based one (``torch.onnx.export(dynamo=True)``): it traces the
block's reference formula (the CPU kernels step aside under it) and handles mmseg's pyramid pooling,
which the TorchScript exporter rejects.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..utils.errors import UserError

#: the first with GELU as one node (opset 18 spelled it as five element-wise ones, which ONNX
#: Runtime did not fuse: the Tiny backbone ran 1.1x faster in it at 20); LayerNormalization is one
#: node since 17
OPSET = 20
PARTS = ('backbone', 'model')
#: one-stage heads whose forward is (class scores, box deltas) per level
DENSE_HEADS = ('RetinaHead',)


class ExportError(UserError, RuntimeError):
    """This network, option or torch cannot be exported; the message says what can."""


def channel_flip(preprocessor: nn.Module) -> bool:
    """Whether a data preprocessor flips BGR to RGB (mmdet's and mmseg's attribute names)."""
    return bool(getattr(preprocessor, '_channel_conversion', False)
                or getattr(preprocessor, 'channel_conversion', False))


class Normalize(nn.Module):
    """The data preprocessor's channel flip and mean/std, as graph operations."""

    def __init__(self, preprocessor: nn.Module) -> None:
        super().__init__()
        self.flip = channel_flip(preprocessor)
        self.register_buffer('mean', preprocessor.mean.clone().float())
        self.register_buffer('std', preprocessor.std.clone().float())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.flip:
            image = image.flip(1)
        return (image - self.mean) / self.std


class SegmentorLogits(nn.Module):
    """Image (N, 3, H, W, 0-255, as loaded; normalised already with ``normalize=False``) -> class
    logits (N, K, H, W)."""

    def __init__(self, segmentor: nn.Module, normalize: bool = True) -> None:
        super().__init__()
        self.normalize = Normalize(segmentor.data_preprocessor) if normalize else nn.Identity()
        self.segmentor = segmentor

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.segmentor.extract_feat(self.normalize(image))
        logits = self.segmentor.decode_head(features)
        return F.interpolate(logits, size=image.shape[2:], mode='bilinear',
                             align_corners=self.segmentor.align_corners)


class DetectorDense(nn.Module):
    """Image (N, 3, H, W, 0-255, as loaded; normalised and padded already with
    ``normalize=False``; H, W multiples of 32) -> a two-stage detector's FPN maps, then its RPN's
    objectness and box deltas per level; a one-stage detector's (RetinaNet's) class scores, then
    its box deltas, per level."""

    def __init__(self, detector: nn.Module, normalize: bool = True) -> None:
        super().__init__()
        self.normalize = Normalize(detector.data_preprocessor) if normalize else nn.Identity()
        self.detector = detector
        self.two_stage = bool(getattr(detector, 'with_rpn', False))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.detector.extract_feat(self.normalize(image))
        if self.two_stage:
            scores, deltas = self.detector.rpn_head(features)
            return (*features, *scores, *deltas)
        scores, deltas = self.detector.bbox_head(features)
        return (*scores, *deltas)


def network(model: nn.Module, part: str) -> nn.Module:
    """The exportable module for ``part`` of a built mmdet/mmseg model."""
    if part == 'backbone':
        return model.backbone
    if part != 'model':
        raise ExportError(f'part must be one of {PARTS}, got {part!r}.')
    if hasattr(model, 'decode_head') and hasattr(model, 'extract_feat'):
        return SegmentorLogits(model)
    if getattr(model, 'with_rpn', False) and hasattr(model, 'roi_head'):
        return DetectorDense(model)
    if type(getattr(model, 'bbox_head', None)).__name__ in DENSE_HEADS:
        return DetectorDense(model)
    raise ExportError(
        f'{type(model).__name__} is not exported whole: supported are segmentors with a decode '
        f'head (UperNet, ...), two-stage detectors with an RPN (their dense part) and one-stage '
        f'detectors with {", ".join(DENSE_HEADS)}. Export its backbone with --part backbone.')


def dynamo_exporter() -> bool:
    """Whether this torch exports through dynamo with free dimensions (torch >= 2.6)."""
    import inspect
    return ('dynamo' in inspect.signature(torch.onnx.export).parameters
            and hasattr(getattr(getattr(torch, 'export', None), 'Dim', None), 'AUTO'))


def check_torch() -> None:
    """The dynamo exporter and onnxscript, or an error naming what to install."""
    import importlib.util
    if not dynamo_exporter():
        raise ExportError(f'ONNX export uses torch.onnx.export(dynamo=True), which torch '
                          f'{torch.__version__} lacks: use torch >= 2.6.')
    missing = [m for m in ('onnx', 'onnxscript', 'onnxruntime')
               if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f'ONNX export needs {", ".join(missing)}: pip install -e .[deploy]')


def fixed_size_only(module: nn.Module) -> list[str]:
    """Modules whose ONNX form holds for the exported input size only: adaptive pooling to more
    than one cell (its windows are computed from the traced size)."""
    return [name for name, m in module.named_modules()
            if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))
            and any(s not in (1, None) for s in np.atleast_1d(m.output_size))]


def export(module: nn.Module, shape: tuple[int, int, int, int], path: str,
           dynamic: bool = False) -> None:
    """Write ``module`` (eval mode, fp32) as ONNX, traced on a ``shape`` input; ``dynamic`` makes
    batch, height and width free."""
    check_torch()
    if dynamic and (fixed := fixed_size_only(module)):
        raise ExportError(f'{", ".join(fixed[:3])} pool(s) adaptively to fixed grids, so the graph '
                          f'holds for one input size only: export without --dynamic, at the '
                          f'size you will run.')
    if dynamic and shape[0] == 1:
        shape = (2, *shape[1:])  # torch.export fixes dimensions traced at size 1
    export_graph(module, dict(image=torch.rand(*shape) * 255), path,
                 dict(image=(0, 2, 3)) if dynamic else {})


def export_graph(module: nn.Module, inputs: dict[str, torch.Tensor], path: str,
                 free: dict[str, tuple[int, ...]]) -> None:
    """``module`` (eval, fp32) as ONNX with named inputs; ``free`` names each input's free dims."""
    check_torch()
    auto = torch.export.Dim.AUTO
    dynamic = tuple({d: auto for d in free.get(name, ())} for name in inputs)
    with torch.no_grad():
        torch.onnx.export(module.eval().float(), tuple(inputs.values()), path, dynamo=True,
                          opset_version=OPSET, input_names=list(inputs),
                          dynamic_shapes=dynamic, external_data=False, verbose=False)


@dataclass
class Agreement:
    shape: tuple[int, ...]
    max_abs: float   # max |onnx - torch| over all outputs
    max_rel: float   # max_abs over the largest |torch| of that output

    def __str__(self) -> str:
        return (f'input {"x".join(map(str, self.shape))}: max abs error {self.max_abs:.2e}, '
                f'max relative error {self.max_rel:.2e}')


def compare(module: nn.Module, path: str, shape: tuple[int, ...], seed: int = 0) -> Agreement:
    """Run the ONNX graph in ONNX Runtime (CPU) and ``module`` on one random image."""
    import onnxruntime as ort
    image = torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 255
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    outputs = session.run(None, {session.get_inputs()[0].name: image.numpy()})
    with torch.no_grad():
        expected = module.eval()(image)
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    if len(outputs) != len(expected):
        raise ExportError(f'{path} gives {len(outputs)} outputs, PyTorch {len(expected)}.')
    errors = [(float(np.abs(o - e.numpy()).max()), float(np.abs(e.numpy()).max()))
              for o, e in zip(outputs, expected)]
    return Agreement(tuple(shape), max(a for a, _ in errors),
                     max(a / max(m, 1e-12) for a, m in errors))
