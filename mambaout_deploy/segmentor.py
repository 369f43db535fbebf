"""A segmentor whose graph gives per-pixel class scores at its input's size (UperNet, Mask2Former
semantic) from image to label map, as mmseg's whole-image ``predict`` computes it."""
from __future__ import annotations

import cv2
import numpy as np

from .backends import load_graphs
from .image import prepare, read_image
from .manifest import Manifest


class Segmentor:
    def __init__(self, folder: str, manifest: Manifest, backend: str = 'onnxruntime',
                 threads: int | None = None, precision: str = 'fp32') -> None:
        self.manifest = manifest
        self.classes = manifest.classes
        self.graph = load_graphs(folder, manifest, backend, threads, precision)['segmentor']

    def __call__(self, image: str | np.ndarray) -> np.ndarray:
        """The label map (H, W, uint8 or int32 class indices) of the image as loaded."""
        image = read_image(image) if isinstance(image, str) else image
        x = prepare(image, self.manifest.preprocess)
        logits = self.graph(image=x.tensor)[0][0]
        rh, rw = x.image_shape
        logits = logits[:, :rh, :rw].transpose(1, 2, 0)  # the padding cut, then H, W, K
        h, w = x.original_shape
        if (rh, rw) != (h, w):  # bilinear, half-pixel: F.interpolate(align_corners=False)
            logits = np.concatenate(  # OpenCV resizes up to 512 channels at once
                [cv2.resize(logits[..., i:i + 512], (w, h), interpolation=cv2.INTER_LINEAR)
                 .reshape(h, w, -1) for i in range(0, logits.shape[-1], 512)], axis=-1)
        labels = logits.argmax(-1)
        return labels.astype(np.uint8 if len(self.classes) < 256 else np.int32)
