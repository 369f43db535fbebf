"""Run a detector or segmentor from one of our configs on images and draw what it predicts.

    python tools/demo.py IMAGE|DIR CONFIG [CHECKPOINT] --out FILE.png [--num N] [--score-thr T]

Detection draws boxes and masks with class names (mmdet's visualizer); segmentation draws a colour
overlay (mmseg's visualizer), beside the ground truth when the image sits in an ADE20K-style
``images/<split>/`` folder with its ``annotations/<split>/*.png``, and a legend of the classes.
With a directory, the first N images are drawn into one grid. Without a checkpoint the model
keeps its initial weights.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from mmengine.config import DictAction
from PIL import Image, ImageDraw

from mambaout_deploy.image import IMAGE_SUFFIXES, images_in
from mambaout_deploy.outputs import SCORE_THRESHOLD
from mambaout_mm.engine.model_layout import check_model_layout
from mambaout_mm.utils import cli
from mambaout_mm.utils.config import load_config, toolbox, toolbox_registry
from mambaout_mm.utils.errors import RunSetupError
from mambaout_mm.weights.checkpoint import load_model_checkpoint, local_checkpoint


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('image', help='an image file, or a folder of images')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file (optional)')
    parser.add_argument('--out', required=True, help='output PNG file')
    parser.add_argument('--num', type=int, default=6, help='images taken from a folder')
    parser.add_argument('--score-thr', type=float, default=SCORE_THRESHOLD,
                        help='detection score threshold')
    parser.add_argument('--device', default='cpu', help='device, e.g. cpu or cuda:0')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    return cli.add_debug_flag(parser).parse_args()


def list_images(path: Path, num: int) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise RunSetupError(f'no image or folder at {path}')
    images = [Path(p) for p in images_in(str(path))][:num]
    if not images:
        raise RunSetupError(f"no {'/'.join(IMAGE_SUFFIXES)} images in {path}")
    return images


def ade_annotation(image: Path) -> Path | None:
    """``.../images/<split>/X.jpg`` -> ``.../annotations/<split>/X.png`` if that exists."""
    parts = list(image.parts)
    if 'images' not in parts:
        return None
    parts[len(parts) - 1 - parts[::-1].index('images')] = 'annotations'
    candidate = Path(*parts).with_suffix('.png')
    return candidate if candidate.is_file() else None


def dataset_meta(cfg, saved: dict) -> dict:
    """Classes and palette: from the checkpoint ``saved``, else from the config's test dataset."""
    meta = saved.get('meta', {}).get('dataset_meta') if isinstance(saved, dict) else None
    if meta:
        return {key.lower(): value for key, value in meta.items()}
    dataset = cfg.test_dataloader.dataset
    meta = dict(toolbox_registry(cfg, 'DATASETS').get(dataset.type).METAINFO)
    meta.update(dataset.get('metainfo') or {})
    return meta


def init_with_checkpoint(init, cfg, checkpoint: str | None, device: str):
    """The toolbox's inference model (``init``: mmdet's ``init_detector``, mmseg's
    ``init_model``) with ``checkpoint``'s weights, which must fit it whole, and its classes."""
    with warnings.catch_warnings(record=True) as caught:
        model = init(cfg, None, device=device)
    for warning in caught:  # all but "checkpoint is None, use COCO classes": they are set below
        if 'checkpoint is None' not in str(warning.message):
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)
    saved = load_model_checkpoint(model, checkpoint) if checkpoint else {}
    model.dataset_meta = dataset_meta(cfg, saved)
    return model


def draw_detections(cfg, checkpoint: str | None, images: list[Path], args) -> list[np.ndarray]:
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS
    model = init_with_checkpoint(init_detector, cfg, checkpoint, args.device)
    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.dataset_meta = model.dataset_meta
    frames = []
    for path in images:
        result = inference_detector(model, str(path))
        rgb = np.asarray(Image.open(path).convert('RGB'))
        visualizer.add_datasample(path.name, rgb, data_sample=result, draw_gt=False,
                                  pred_score_thr=args.score_thr)
        frames.append(visualizer.get_image())
    return frames


def draw_segmentations(cfg, checkpoint: str | None, images: list[Path],
                       args) -> list[np.ndarray]:
    import torch
    from mmengine.structures import PixelData
    from mmseg.apis import inference_model, init_model
    from mmseg.registry import VISUALIZERS
    model = init_with_checkpoint(init_model, cfg, checkpoint, args.device)
    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.dataset_meta = model.dataset_meta
    reduce_zero_label = cfg.test_dataloader.dataset.get('reduce_zero_label', False) or \
        cfg.test_dataloader.dataset.type == 'ADE20KDataset'
    frames = []
    for path in images:
        result = inference_model(model, str(path))
        annotation = ade_annotation(path)
        if annotation is not None:
            gt = np.asarray(Image.open(annotation)).astype(np.int64)
            if reduce_zero_label:
                gt = np.where(gt == 0, 255, gt - 1)
            result.gt_sem_seg = PixelData(data=torch.from_numpy(gt)[None])
        rgb = np.asarray(Image.open(path).convert('RGB'))
        panels = []  # the visualizer keeps only the last overlay it drew: draw them one by one
        for draw_gt in ([True] if annotation is not None else []) + [False]:
            visualizer.add_datasample(path.name, rgb, data_sample=result, draw_gt=draw_gt,
                                      draw_pred=not draw_gt, with_labels=False)
            panels.append(visualizer.get_image())
        present = set(result.pred_sem_seg.data.unique().tolist())
        frames.append(with_legend(np.concatenate(panels, axis=1), model.dataset_meta, present))
    return frames


def with_legend(frame: np.ndarray, meta: dict, present: set[int]) -> np.ndarray:
    """Append a strip naming the colour of every class in the prediction."""
    entries = [(meta['classes'][i], tuple(meta['palette'][i])) for i in sorted(present)
               if i < len(meta['classes'])]
    row_h = 14
    strip = Image.new('RGB', (frame.shape[1], row_h * max(len(entries), 1) + 4), 'white')
    draw = ImageDraw.Draw(strip)
    for k, (name, colour) in enumerate(entries):
        y = 2 + k * row_h
        draw.rectangle([4, y, 14, y + 10], fill=colour)
        draw.text((20, y - 1), name, fill='black')
    return np.concatenate([frame, np.asarray(strip)], axis=0)


def grid(frames: list[np.ndarray], columns: int = 3) -> Image.Image:
    h = max(f.shape[0] for f in frames)
    w = max(f.shape[1] for f in frames)
    columns = min(columns, len(frames))
    rows = -(-len(frames) // columns)
    canvas = Image.new('RGB', (columns * w, rows * h), 'white')
    for k, frame in enumerate(frames):
        canvas.paste(Image.fromarray(frame), ((k % columns) * w, (k // columns) * h))
    return canvas


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    check_model_layout(cfg)
    checkpoint = local_checkpoint(args.checkpoint, must_exist=True) if args.checkpoint else None
    images = list_images(Path(args.image), args.num)
    draw = draw_detections if toolbox(cfg) == 'mmdet' else draw_segmentations
    picture = grid(draw(cfg, checkpoint, images, args))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.out)
    print(f'wrote {args.out} ({picture.width}x{picture.height}, {len(images)} images)')


if __name__ == '__main__':
    cli.run(main)
