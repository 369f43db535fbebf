"""A segmentor whose graph gives per-pixel class scores at its input's size (UperNet, Mask2Former
semantic) from image to label map, as mmseg's whole-image ``predict`` computes it."""
from __future__ import annotations

import numpy as np

from .backends import load_graphs
from .image import prepare, read_image, resize_maps
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
        # the padding cut, then H, W, K
        logits = resize_maps(logits[:, :rh, :rw].transpose(1, 2, 0), x.original_shape)
        labels = logits.argmax(-1)
        return labels.astype(np.uint8 if len(self.classes) < 256 else np.int32)
