"""A segmentor whose graph gives per-pixel class scores at its input's size (UperNet, Mask2Former
semantic) from image to label map, as mmseg's whole-image ``predict`` computes it."""
from __future__ import annotations

import numpy as np

from .image import resize_maps
from .model import DeployedModel


class Segmentor(DeployedModel):
    def __call__(self, image: str | np.ndarray) -> np.ndarray:
        """The label map (H, W, uint8 or int32 class indices) of the image as loaded."""
        x = self.prepare(image)
        logits = self.graphs['segmentor'](image=x.tensor)[0][0]
        rh, rw = x.image_shape
        # the padding cut, then H, W, K
        logits = resize_maps(logits[:, :rh, :rw].transpose(1, 2, 0), x.original_shape)
        labels = logits.argmax(-1)
        return labels.astype(np.uint8 if len(self.classes) < 256 else np.int32)
