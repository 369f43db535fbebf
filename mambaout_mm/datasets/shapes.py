"""Small, deterministic, generated "shapes" datasets in real COCO and ADE20K layouts.

Every image holds 1-4 crisp, filled shapes (see ``SHAPE_CLASSES``), each in a jittered colour of
its class, on a solid, gradient or mildly noisy background that it stands out from. Shape
outlines are polygons rasterised by pycocotools, so a polygon annotation decodes to exactly the
painted pixels; occluded objects are annotated with the RLE of their visible mask. Each image is
drawn from its own seeded generator, so the same arguments always give byte-identical files.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

SHAPE_CLASSES = ('circle', 'square', 'triangle', 'star')
_PALETTE = [(220, 20, 60), (0, 130, 230), (250, 170, 30), (60, 180, 75)]

FORMAT_VERSION = 4
MARKER = '.shapes.json'
MIN_IMAGE_SIDE = 32
MIN_DIAMETER_PX = 10.0
_MIN_VISIBLE_FRACTION = 0.3  # an object less visible than this is left out of the scene
_MIN_VISIBLE_PX = 8
# RGB distance a shape's colour keeps from the background under it and from an overlapping shape.
_MIN_CONTRAST = dict(background=100.0, overlap=50.0)
_COLOUR_TRIES = 50
_RLE_EVERY = 5  # every 5th annotation id is stored as RLE, as is every occluded object
_JPEG = dict(quality=95, subsampling=0)

_COCO_SPLITS = {'train': 'train2017', 'val': 'val2017'}
_ADE_SPLITS = {'train': 'training', 'val': 'validation'}


@dataclass(frozen=True)
class ShapesLayout:
    """Where a generated dataset keeps its parts: the default root (the femto configs' data_root)
    and, under it, the training images, validation images and validation labels."""
    root: str
    train_images: str
    val_images: str
    val_labels: str


#: The generated datasets' layouts, by the toolbox whose configs read them.
LAYOUTS = {
    'mmdet': ShapesLayout('data/coco_shapes', _COCO_SPLITS['train'], _COCO_SPLITS['val'],
                          f'annotations/instances_{_COCO_SPLITS["val"]}.json'),
    'mmseg': ShapesLayout('data/ade_shapes', f'images/{_ADE_SPLITS["train"]}',
                          f'images/{_ADE_SPLITS["val"]}', f'annotations/{_ADE_SPLITS["val"]}'),
}
_COCO_NAME = re.compile(r'\d{12}\.jpg')
_ADE_NAME = re.compile(r'ADE_(train|val)_\d{8}\.(jpg|png)')


def coco_shapes_metainfo() -> dict:
    """``metainfo`` for mmdet's ``CocoDataset`` on the COCO shapes dataset."""
    return dict(classes=SHAPE_CLASSES, palette=list(_PALETTE))


def ade_shapes_metainfo() -> dict:
    """``metainfo`` for mmseg's ``ADE20KDataset`` (``reduce_zero_label=True``) on ADE shapes."""
    return dict(classes=SHAPE_CLASSES, palette=[list(c) for c in _PALETTE])


# ----------------------------------------------------------------------------------- scenes
def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A solid colour or a moderate linear gradient, with mild Gaussian noise half the time."""
    c0 = rng.integers(0, 256, 3).astype(np.float64)
    if rng.random() < 0.5:
        img = np.broadcast_to(c0, (h, w, 3)).copy()
    else:
        c1 = np.clip(c0 + rng.integers(-90, 91, 3), 0, 255)
        theta = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        t = xx * np.cos(theta) + yy * np.sin(theta)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
        img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    if rng.random() < 0.5:
        img = img + rng.normal(0, rng.uniform(2, 8), img.shape)
    return img


def _outline(rng: np.random.Generator, label: int, h: int, w: int) -> list[float]:
    """A random polygon ``[x0, y0, x1, y1, ...]`` for class ``label``, fully inside the image."""
    short = min(h, w)
    r = max(rng.uniform(0.12, 0.45) * short, MIN_DIAMETER_PX) / 2
    cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
    angle = rng.uniform(0, 2 * np.pi)
    name = SHAPE_CLASSES[label]
    if name == 'circle':
        radii, n = np.full(48, r), 48
    elif name == 'square':
        radii, n = np.full(4, r), 4
    elif name == 'triangle':
        radii, n = np.full(3, r), 3
    else:  # star: five points, alternating outer and inner radius
        radii, n = np.tile([r, 0.45 * r], 5), 10
    phi = angle + 2 * np.pi * np.arange(n) / n
    xs = np.clip(cx + radii * np.cos(phi), 0, w)
    ys = np.clip(cy + radii * np.sin(phi), 0, h)
    return [round(float(v), 1) for v in np.stack([xs, ys], 1).ravel()]


def _poly_mask(poly: list[float], h: int, w: int) -> np.ndarray:
    """Rasterise a polygon exactly as ``COCO.annToMask`` does."""
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([poly], h, w))).astype(bool)


def _class_colour(rng: np.random.Generator, label: int) -> np.ndarray:
    """The class's palette colour, jittered by up to 40 per channel."""
    return np.clip(np.array(_PALETTE[label], np.float64) + rng.integers(-40, 41, 3), 0, 255)


def _scene(rng: np.random.Generator, h: int, w: int, last_label: int
           ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Render one image; return it (uint8 HxWx3) and its objects in painting order.

    Each object has ``label``, ``poly``, ``full`` (its whole mask) and ``visible`` (what later
    objects leave of it). The topmost object has class ``last_label``, so labels can be spread.
    Shapes get a jittered colour of their class: with shape alone, a model trained from scratch
    for a few CPU minutes learned too little (mask AP ~0.3, mIoU ~10) to show anything.
    """
    n = int(rng.integers(1, 5))
    labels = [int(v) for v in rng.integers(0, len(SHAPE_CLASSES), n - 1)] + [last_label]
    objs = []
    for label in labels:
        poly = _outline(rng, label, h, w)
        objs.append(dict(label=label, poly=poly, full=_poly_mask(poly, h, w)))
    # From the top down: an object's visible part is what the (kept) objects above leave of it.
    covered = np.zeros((h, w), bool)
    kept = []
    for obj in reversed(objs):
        visible = obj['full'] & ~covered
        area = int(visible.sum())
        if area < max(_MIN_VISIBLE_PX, _MIN_VISIBLE_FRACTION * obj['full'].sum()):
            continue  # dropped from the scene entirely: never painted, never annotated
        obj['visible'] = visible
        covered |= obj['full']
        kept.append(obj)
    kept.reverse()
    img = _paint(rng, h, w, kept)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), kept


def _paint(rng: np.random.Generator, h: int, w: int, objs: list[dict[str, Any]]) -> np.ndarray:
    """A background with ``objs`` painted on it, its colours drawn until every object stands out.

    The background and the shapes' colours are redrawn together until each shape keeps
    ``_MIN_CONTRAST`` from the background beneath it and from every shape it overlaps (the best of
    ``_COLOUR_TRIES`` draws otherwise): a blue square on a blue gradient is a guessing game, not a
    lesson, for a model trained for minutes.
    """
    overlapped = [[j for j in range(k) if (objs[j]['full'] & obj['full']).any()]
                  for k, obj in enumerate(objs)]  # the shapes painted before each that it touches
    best, best_margin = None, -np.inf
    for _ in range(_COLOUR_TRIES):
        img = _background(rng, h, w)
        colours = [_class_colour(rng, obj['label']) for obj in objs]
        margins = []
        for obj, colour, below in zip(objs, colours, overlapped):
            beneath = img[obj['full']].mean(0)
            margins.append(np.linalg.norm(colour - beneath) / _MIN_CONTRAST['background'])
            margins += [np.linalg.norm(colour - colours[j]) / _MIN_CONTRAST['overlap']
                        for j in below]
        margin = min(margins, default=np.inf)  # no objects: any background will do
        if margin > best_margin:
            best, best_margin = (img, colours), margin
        if best_margin >= 1:
            break
    img, colours = best
    for obj, colour in zip(objs, colours):
        img[obj['full']] = colour
    return img


def _image_rng(seed: int, kind: int, split: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, kind, split, index]))


# ------------------------------------------------------------------------------ bookkeeping
def _check_args(num_train: int, num_val: int, image_size: tuple[int, int], seed: int
                ) -> tuple[int, int]:
    for name, value in (('num_train', num_train), ('num_val', num_val)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f'{name} must be a positive integer, got {value!r}')
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
    try:
        h, w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f'image_size must be (height, width), got {image_size!r}') from None
    if min(h, w) < MIN_IMAGE_SIDE:
        raise ValueError(f'image_size must be at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}, '
                         f'got {image_size!r}')
    return h, w


def _dump_json(obj: Any, path: Path) -> None:
    path.write_text(json.dumps(obj, sort_keys=True, separators=(',', ':')) + '\n')


def _load_marker(root: Path, params: dict, expected: list[Path]) -> dict | None:
    """The stored summary if ``root`` already holds this exact dataset, else ``None``."""
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if marker.get('params') != params or not all(p.is_file() for p in expected):
        return None
    return marker


def _prepare(root: Path, dirs: list[Path], pattern: re.Pattern) -> None:
    """Invalidate the marker and delete earlier generated files (and only those)."""
    (root / MARKER).unlink(missing_ok=True)
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        for p in d.iterdir():
            if pattern.fullmatch(p.name):
                p.unlink()


def _finish(root: Path, summary: dict, generated: bool) -> dict:
    return dict(summary, root=str(root), generated=generated)


# ------------------------------------------------------------------------------------- COCO
def make_coco_shapes(root: str | Path, num_train: int = 200, num_val: int = 50,
                     image_size: tuple[int, int] = (192, 256), seed: int = 0) -> dict:
    """Write a COCO instance-segmentation shapes dataset under ``root`` (skipped if present).

    Layout: ``train2017/``, ``val2017/`` (JPEG) and ``annotations/instances_{train,val}2017.json``.
    ``image_size`` is (height, width). Returns a summary with image and instance counts per split.
    """
    h, w = _check_args(num_train, num_val, image_size, seed)
    root = Path(root)
    params = dict(format='coco', version=FORMAT_VERSION, num_train=int(num_train),
                  num_val=int(num_val), image_size=[h, w], seed=int(seed))
    counts = {'train': int(num_train), 'val': int(num_val)}
    expected = [root / 'annotations' / f'instances_{d}.json' for d in _COCO_SPLITS.values()]
    expected += [root / d / f'{i:012d}.jpg' for s, d in _COCO_SPLITS.items()
                 for i in range(1, counts[s] + 1)]
    if (marker := _load_marker(root, params, expected)) is not None:
        return _finish(root, marker, generated=False)

    _prepare(root, [root / d for d in _COCO_SPLITS.values()], _COCO_NAME)
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    categories = [dict(id=k + 1, name=n, supercategory='shape')
                  for k, n in enumerate(SHAPE_CLASSES)]
    instances = {}
    for split_idx, (split, dirname) in enumerate(_COCO_SPLITS.items()):
        images, anns = [], []
        for i in range(counts[split]):
            rng = _image_rng(seed, 0, split_idx, i)
            img, objs = _scene(rng, h, w, last_label=i % len(SHAPE_CLASSES))
            image_id = i + 1
            file_name = f'{image_id:012d}.jpg'
            Image.fromarray(img).save(root / dirname / file_name, **_JPEG)
            images.append(dict(id=image_id, file_name=file_name, height=h, width=w))
            for obj in objs:
                ann_id = len(anns) + 1
                vis = obj['visible']
                ys, xs = np.nonzero(vis)
                x0, y0 = int(xs.min()), int(ys.min())
                bbox = [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]
                if ann_id % _RLE_EVERY == 0 or (vis != obj['full']).any():
                    rle = mask_utils.encode(np.asfortranarray(vis.astype(np.uint8)))
                    segm = dict(size=[h, w], counts=rle['counts'].decode('ascii'))
                else:
                    segm = [obj['poly']]
                anns.append(dict(id=ann_id, image_id=image_id, category_id=obj['label'] + 1,
                                 bbox=bbox, area=int(vis.sum()), iscrowd=0,
                                 segmentation=segm))
        _dump_json(dict(info=dict(description='Generated shapes (mambaout-mm)',
                                  version=str(FORMAT_VERSION)),
                        licenses=[], images=images, annotations=anns, categories=categories),
                   root / 'annotations' / f'instances_{dirname}.json')
        instances[split] = len(anns)
    summary = dict(params=params, classes=list(SHAPE_CLASSES), images=counts,
                   instances=instances)
    _dump_json(summary, root / MARKER)
    return _finish(root, summary, generated=True)


# -------------------------------------------------------------------------------------- ADE
def make_ade_shapes(root: str | Path, num_train: int = 200, num_val: int = 50,
                    image_size: tuple[int, int] = (128, 128), seed: int = 0) -> dict:
    """Write an ADE20K-layout semantic-segmentation shapes dataset under ``root``.

    Layout: ``images/{training,validation}/ADE_{train,val}_NNNNNNNN.jpg`` and matching
    single-channel ``annotations/.../*.png`` label maps (0 = background,
    k = ``SHAPE_CLASSES[k-1]``), as mmseg's ``ADE20KDataset`` expects with
    ``reduce_zero_label=True``. Skipped if present.
    """
    h, w = _check_args(num_train, num_val, image_size, seed)
    root = Path(root)
    params = dict(format='ade', version=FORMAT_VERSION, num_train=int(num_train),
                  num_val=int(num_val), image_size=[h, w], seed=int(seed))
    counts = {'train': int(num_train), 'val': int(num_val)}
    expected = [root / top / d / f'ADE_{s}_{i:08d}.{ext}'
                for s, d in _ADE_SPLITS.items() for i in range(1, counts[s] + 1)
                for top, ext in (('images', 'jpg'), ('annotations', 'png'))]
    if (marker := _load_marker(root, params, expected)) is not None:
        return _finish(root, marker, generated=False)

    _prepare(root, [root / top / d for top in ('images', 'annotations')
                    for d in _ADE_SPLITS.values()], _ADE_NAME)
    pixels = {}
    for split_idx, (split, dirname) in enumerate(_ADE_SPLITS.items()):
        hist = np.zeros(len(SHAPE_CLASSES) + 1, np.int64)
        for i in range(counts[split]):
            rng = _image_rng(seed, 1, split_idx, i)
            img, objs = _scene(rng, h, w, last_label=i % len(SHAPE_CLASSES))
            label = np.zeros((h, w), np.uint8)
            for obj in objs:
                label[obj['full']] = obj['label'] + 1
            stem = f'ADE_{split}_{i + 1:08d}'
            Image.fromarray(img).save(root / 'images' / dirname / f'{stem}.jpg', **_JPEG)
            Image.fromarray(label).save(root / 'annotations' / dirname / f'{stem}.png')
            hist += np.bincount(label.ravel(), minlength=len(hist))
        pixels[split] = dict(zip(('background',) + SHAPE_CLASSES, map(int, hist)))
    summary = dict(params=params, classes=list(SHAPE_CLASSES), images=counts, pixels=pixels)
    _dump_json(summary, root / MARKER)
    return _finish(root, summary, generated=True)
