"""The generated shapes datasets: real COCO / ADE20K layouts, exact masks, determinism."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from mambaout_mm.datasets import (
    SHAPE_CLASSES,
    ade_shapes_metainfo,
    coco_shapes_metainfo,
    make_ade_shapes,
    make_coco_shapes,
)

COCO_ARGS = dict(num_train=8, num_val=4, image_size=(64, 80), seed=3)
ADE_ARGS = dict(num_train=8, num_val=4, image_size=(48, 56), seed=3)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*'))
            if p.is_file()}


def erode(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 4 neighbours are all in ``mask``."""
    m = np.pad(mask, 1)
    return mask & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]


def grow(mask: np.ndarray, steps: int) -> np.ndarray:
    """``mask`` and the pixels within ``steps`` 4-neighbour steps of it, inside the image."""
    for _ in range(steps):
        m = np.pad(mask, 1)
        mask = mask | m[:-2, 1:-1] | m[2:, 1:-1] | m[1:-1, :-2] | m[1:-1, 2:]
    return mask


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('coco')
    summary = make_coco_shapes(root, **COCO_ARGS)
    assert summary['generated'] and summary['images'] == {'train': 8, 'val': 4}
    return root


@pytest.fixture(scope='module')
def ade_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('ade')
    assert make_ade_shapes(root, **ADE_ARGS)['generated']
    return root


def test_metainfo():
    assert SHAPE_CLASSES == ('circle', 'square', 'triangle', 'star')
    for meta in (coco_shapes_metainfo(), ade_shapes_metainfo()):
        assert meta['classes'] == SHAPE_CLASSES
        assert len(meta['palette']) == len(SHAPE_CLASSES)
        assert len({tuple(c) for c in meta['palette']}) == len(SHAPE_CLASSES)


@pytest.mark.parametrize('split', ['train', 'val'])
def test_coco_annotations_match_masks(coco_root, split):
    coco = COCO(str(coco_root / 'annotations' / f'instances_{split}2017.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(SHAPE_CLASSES)
    assert sorted(coco.getCatIds()) == [1, 2, 3, 4]
    kinds = set()
    for img_info in coco.loadImgs(coco.getImgIds()):
        image = np.asarray(Image.open(coco_root / f'{split}2017' / img_info['file_name']))
        assert image.shape == (64, 80, 3) == (img_info['height'], img_info['width'], 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_info['id']))
        assert 1 <= len(anns) <= 4
        union = np.zeros(image.shape[:2], int)
        for ann in anns:
            kinds.add('rle' if isinstance(ann['segmentation'], dict) else 'polygon')
            assert ann['iscrowd'] == 0 and ann['category_id'] in coco.cats
            mask = coco.annToMask(ann).astype(bool)
            assert ann['area'] > 0 and abs(mask.sum() - ann['area']) <= 0.01 * ann['area']
            ys, xs = np.nonzero(mask)
            x, y, w, h = ann['bbox']
            assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(), xs.max(), ys.max())
            union += mask
            # A visible mask covers one flat colour (away from JPEG-blurred edges).
            inner = erode(mask)
            if inner.sum() >= 10:
                colours = image[inner].astype(float)
                assert np.abs(colours - np.median(colours, 0)).mean() < 6
        assert union.max() == 1, 'visible masks of one image must not overlap'
    assert kinds == {'rle', 'polygon'}


def test_coco_idempotent_and_deterministic(coco_root, tmp_path):
    marker = coco_root / '.shapes.json'
    mtime = marker.stat().st_mtime_ns
    again = make_coco_shapes(coco_root, **COCO_ARGS)
    assert not again['generated'] and marker.stat().st_mtime_ns == mtime
    assert again['instances'] == json.loads(marker.read_text())['instances']
    fresh = make_coco_shapes(tmp_path / 'a', **COCO_ARGS)
    assert fresh['generated'] and tree_bytes(tmp_path / 'a') == tree_bytes(coco_root)
    other = make_coco_shapes(tmp_path / 'b', **dict(COCO_ARGS, seed=4))
    assert other['generated']
    assert tree_bytes(tmp_path / 'b')['train2017/000000000001.jpg'] != \
        tree_bytes(coco_root)['train2017/000000000001.jpg']


def test_every_shape_stands_out_from_what_is_around_it(tmp_path):
    """A shape's colour differs from the nearby background, and from a shape it touches, by more
    than noise and JPEG could hide (the generator keeps 100 and 50 RGB units). Without those rules
    10 of these 143 shapes were within 85 of their surroundings (the closest 8), and 3 of the 14
    touching pairs within 40 of each other (the closest 22)."""
    make_coco_shapes(tmp_path, num_train=60, num_val=1, image_size=(96, 128), seed=5)
    coco = COCO(str(tmp_path / 'annotations' / 'instances_train2017.json'))
    from_background, from_neighbour = [], []
    for img_info in coco.loadImgs(coco.getImgIds()):
        image = np.asarray(Image.open(tmp_path / 'train2017' / img_info['file_name']), float)
        masks = [coco.annToMask(a).astype(bool)
                 for a in coco.loadAnns(coco.getAnnIds(imgIds=img_info['id']))]
        background = ~grow(np.any(masks, 0), 2)
        inners = [erode(erode(mask)) for mask in masks]
        for i, (mask, inner) in enumerate(zip(masks, inners)):
            if inner.sum() < 10:
                continue
            colour = np.median(image[inner], 0)
            ring = grow(mask, 5) & background
            if ring.sum() >= 10:
                from_background.append(np.linalg.norm(colour - np.median(image[ring], 0)))
            edge = grow(mask, 1)
            for other, other_inner in zip(masks[i + 1:], inners[i + 1:]):
                if (edge & other).sum() >= 10 and other_inner.sum() >= 10:
                    from_neighbour.append(np.linalg.norm(colour
                                                         - np.median(image[other_inner], 0)))
    assert len(from_background) > 60 and len(from_neighbour) > 5
    assert min(from_background) >= 85
    assert min(from_neighbour) >= 40


def test_ade_layout_and_labels(ade_root):
    hist = np.zeros(256, int)
    for split, folder in (('train', 'training'), ('val', 'validation')):
        images = sorted(p.stem for p in (ade_root / 'images' / folder).glob('*.jpg'))
        labels = sorted(p.stem for p in (ade_root / 'annotations' / folder).glob('*.png'))
        assert images == labels and len(images) == ADE_ARGS[f'num_{split}']
        assert all(s.startswith(f'ADE_{split}_') for s in images)
        for stem in labels:
            label = Image.open(ade_root / 'annotations' / folder / f'{stem}.png')
            assert label.mode == 'L' and label.size == (56, 48)
            assert Image.open(ade_root / 'images' / folder / f'{stem}.jpg').size == (56, 48)
            hist += np.bincount(np.asarray(label).ravel(), minlength=256)
        if split == 'train':
            assert (hist[:len(SHAPE_CLASSES) + 1] > 0).all(), 'background and every class'
    assert hist[len(SHAPE_CLASSES) + 1:].sum() == 0


def test_ade_deterministic_and_regenerates_on_new_params(ade_root, tmp_path):
    make_ade_shapes(tmp_path, **ADE_ARGS)
    assert tree_bytes(tmp_path) == tree_bytes(ade_root)
    summary = make_ade_shapes(tmp_path, **dict(ADE_ARGS, num_train=5))
    assert summary['generated'] and summary['images']['train'] == 5
    assert len(list((tmp_path / 'images' / 'training').iterdir())) == 5  # stale files gone
    assert len(list((tmp_path / 'annotations' / 'training').iterdir())) == 5


@pytest.mark.parametrize('make', [make_coco_shapes, make_ade_shapes])
@pytest.mark.parametrize('kwargs, name', [
    (dict(num_train=0), 'num_train'), (dict(num_val=-1), 'num_val'),
    (dict(num_train=2.5), 'num_train'), (dict(image_size=(16, 64)), 'image_size'),
    (dict(image_size=(64,)), 'image_size'), (dict(seed=-1), 'seed')])
def test_bad_arguments(make, kwargs, name, tmp_path):
    with pytest.raises(ValueError, match=name):
        make(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir()), 'nothing written on bad arguments'


def test_cli(tmp_path, capsys):
    path = Path(__file__).resolve().parents[1] / 'tools' / 'make_shapes.py'
    spec = importlib.util.spec_from_file_location('make_shapes', path)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    summary = cli.main(['ade', str(tmp_path), '--num-train', '2', '--num-val', '1',
                        '--size', '40', '36', '--seed', '1'])
    assert summary['params']['image_size'] == [40, 36] and summary['generated']
    assert 'wrote ade' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(['coco', str(tmp_path / 'x'), '--num-val', '0'])
