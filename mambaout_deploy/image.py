"""The test-time pre-processing of mmdet's and mmseg's configs, as they compute it: OpenCV's
decoding and bilinear resize (mmcv's backend), mmcv's keep-ratio rule, then the data
preprocessor's channel flip, normalisation and padding."""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import DeployError
from .manifest import Preprocess


class ImageReadError(DeployError, OSError):
    """An image file that OpenCV cannot read; the message names it."""


def read_image(path: str) -> np.ndarray:
    """BGR uint8 (H, W, 3), as mmcv's ``LoadImageFromFile`` loads it."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(f'Cannot read the image {path}: missing, or not an image OpenCV '
                             'decodes.')
    return image


#: The image files the tools read from a folder, matched whatever the case of the suffix.
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')


def is_image(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES


def images_in(folder: str) -> list[str]:
    """The images (``IMAGE_SUFFIXES``, any case) in ``folder``, sorted."""
    return sorted(entry.path for entry in os.scandir(folder)
                  if entry.is_file() and is_image(entry.name))


def image_paths(items: list[str]) -> list[str]:
    """Image files, and the images in folders, of ``items``; an error when there are none."""
    paths = [p for item in items for p in (images_in(item) if os.path.isdir(item) else [item])]
    if not paths:
        raise ImageReadError(f'No images in {items}.')
    return paths


def rescale_size(width: int, height: int, scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv's ``rescale_size``: the largest size within ``scale``'s long and short edges."""
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(width * float(factor) + 0.5), int(height * float(factor) + 0.5)


#: the most channels OpenCV resizes at once (512 in OpenCV 4, 128 in OpenCV 5)
MAX_CHANNELS = 128


def resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) float maps resized to ``size`` (h, w), bilinearly at pixel centres, as
    ``F.interpolate(mode='bilinear', align_corners=False)``."""
    h, w = size
    if maps.shape[:2] == (h, w):
        return maps
    return np.concatenate(
        [cv2.resize(maps[..., i:i + MAX_CHANNELS], (w, h), interpolation=cv2.INTER_LINEAR)
         .reshape(h, w, -1) for i in range(0, maps.shape[-1], MAX_CHANNELS)], axis=-1)


@dataclass
class Prepared:
    """The network's input and where it came from."""
    tensor: np.ndarray               # (1, 3, H_pad, W_pad) float32, normalised
    image_shape: tuple[int, int]     # (h, w) after resizing, before padding
    original_shape: tuple[int, int]  # (h, w) as loaded
    scale_factor: tuple[float, float]  # (w, h) resized / original


def prepare(image: np.ndarray, pre: Preprocess) -> Prepared:
    """Resize (``pre.scale``, keep ratio or not; in float32 with ``pre.to_float32``), flip BGR to
    RGB, normalise, pad."""
    h, w = image.shape[:2]
    if pre.to_float32:
        image = image.astype(np.float32)
    if pre.keep_ratio:
        size = rescale_size(w, h, tuple(pre.scale))
    else:
        size = tuple(pre.scale)
    resized = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR) if size != (w, h) else image
    x = resized.astype(np.float32)
    if pre.to_rgb:
        x = x[..., ::-1]
    x = (x - np.float32(pre.mean)) / np.float32(pre.std)
    rh, rw = resized.shape[:2]
    divisor = pre.pad_size_divisor or 1
    ph, pw = -(-rh // divisor) * divisor, -(-rw // divisor) * divisor
    tensor = np.zeros((1, 3, ph, pw), np.float32)
    tensor[0, :, :rh, :rw] = x.transpose(2, 0, 1)
    return Prepared(tensor, (rh, rw), (h, w), (rw / w, rh / h))
