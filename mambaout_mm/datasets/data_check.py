"""Checks of a config's datasets: made before a run (the files exist and give samples), and, by
``tools/check_dataset.py``, of every image file, so that a bad file is named before a long run."""
from __future__ import annotations

import copy
import json
import os.path as osp
from typing import Any, Iterator

from mmengine.config import Config, ConfigDict

from ..utils.config import toolbox_registry
from ..utils.errors import RunSetupError

#: What each dataset type expects on disk, for the message when it is missing.
DATASET_LAYOUTS = {
    'CocoDataset': ('COCO 2017: data/coco/annotations/instances_{train,val}2017.json and '
                    'data/coco/{train,val}2017/*.jpg (https://cocodataset.org/#download)'),
    'ADE20KDataset': ('ADE20K (SceneParsing): data/ade/ADEChallengeData2016/'
                      '{images,annotations}/{training,validation}/ '
                      '(http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip)'),
}
SHAPES_HINT = ('To try the project without it, generate a small stand-in: '
               'python tools/make_shapes.py {coco,ade} DIR (see docs/training.md).')
#: The keys of a dataset sample that name files the pipeline decodes as images.
IMAGE_KEYS = ('img_path', 'seg_map_path')


def leaf_datasets(dataset: ConfigDict) -> Iterator[ConfigDict]:
    """The datasets that read files, inside wrappers (``dataset=``) and concatenations."""
    if 'datasets' in dataset:
        for child in dataset.datasets:
            yield from leaf_datasets(child)
    elif 'dataset' in dataset:
        yield from leaf_datasets(dataset.dataset)
    else:
        yield dataset


def phase_datasets(cfg: Config, phases: tuple[str, ...]) -> Iterator[tuple[str, ConfigDict]]:
    for phase in phases:
        loader = cfg.get(f'{phase}_dataloader')
        if loader is not None:
            for dataset in leaf_datasets(loader.dataset):
                yield phase, dataset


def on_local_disk(path: str, backend_args: dict | None) -> bool:
    """Whether mmengine reads ``path`` from the local disk, not a storage backend (``backend_args``
    or a ``s3://``-like prefix), which this project leaves to mmengine to reach."""
    scheme = path.split('://', 1)[0] if '://' in path else 'file'
    return (backend_args or {}).get('backend', 'local') == 'local' and scheme == 'file'


def dataset_files(dataset: ConfigDict) -> list[str]:
    """The annotation file and the folders the dataset reads, joined to its ``data_root``."""
    root = dataset.get('data_root') or ''
    ann_file = dataset.get('ann_file') or ''
    prefixes = dataset.get('data_prefix') or {}
    return ([osp.join(root, ann_file)] if ann_file else []) + [
        osp.join(root, p) for p in prefixes.values() if p]


def build_dataset(cfg: Config, dataset: ConfigDict):
    """The dataset, built in the config's toolbox with its samples loaded (not serialised, so an
    empty one can be reported rather than crash)."""
    dataset = copy.deepcopy(dataset)
    dataset.update(serialize_data=False, lazy_init=False)
    return toolbox_registry(cfg, 'DATASETS').build(dataset)


def check_datasets(cfg: Config, phases: tuple[str, ...]) -> list[tuple[str, ConfigDict, Any]]:
    """Fail before the run when a dataset the phases need is missing on disk or gives no samples;
    the datasets checked, built, with their phase and config. Data on a storage backend is left to
    mmengine (built as ``None``)."""
    checked = []
    for phase, dataset in phase_datasets(cfg, phases):
        files = dataset_files(dataset)
        if not all(on_local_disk(p, dataset.get('backend_args')) for p in files):
            checked.append((phase, dataset, None))
            continue
        missing = [p for p in files if not osp.exists(p)]
        if missing:
            layout = DATASET_LAYOUTS.get(dataset.get('type'), 'see the dataset config')
            raise RunSetupError(
                f'{dataset.get("type")} for {phase} is missing {", ".join(missing)}. '
                f'Expected layout: {layout}. Put the data there, or set '
                f'--cfg-options {phase}_dataloader.dataset.data_root=DIR. {SHAPES_HINT}')
        try:
            built = build_dataset(cfg, dataset)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:  # a JSON file cut short, ...
            raise RunSetupError(damaged_annotations(dataset, phase, err)) from None
        if len(built) == 0:
            raise RunSetupError(f'{dataset.get("type")} for {phase} has no samples: '
                                f'{no_samples_reason(dataset)}.')
        checked.append((phase, dataset, built))
    return checked


def damaged_annotations(dataset: ConfigDict, phase: str, err: ValueError) -> str:
    """What is wrong with an annotation file that does not decode, and the way out."""
    path = dataset_files(dataset)[0] if dataset.get('ann_file') else 'its annotation file'
    where = (f'{err.msg} at line {err.lineno}, column {err.colno} of its {len(err.doc)} '
             f'characters' if isinstance(err, json.JSONDecodeError) else str(err))
    return (f'The annotation file {path} ({dataset.get("type")} for {phase}) is damaged: not '
            f'complete JSON ({where}); a download or copy cut short leaves it so. Download or '
            f'copy it again (the shapes datasets: generate them again with '
            f'tools/make_shapes.py).')


def no_samples_reason(dataset: ConfigDict) -> str:
    files = dataset_files(dataset)
    filtered = (f', or none that pass filter_cfg={dict(dataset.filter_cfg)}'
                if dataset.get('filter_cfg') else '')
    if dataset.get('ann_file'):
        return f'the annotation file {files[0]} lists no images{filtered}'
    return f'{", ".join(files)} holds no files it reads{filtered}'


def image_problem(path: str, backend_args: dict | None = None) -> str | None:
    """What stops mmcv from decoding the image file ``path``, or ``None`` if it decodes."""
    import mmcv
    from mmengine import fileio
    try:
        data = fileio.get(path, backend_args=backend_args)
    except FileNotFoundError:
        return 'does not exist'
    except OSError as err:
        return f'cannot be read ({err})'
    if not data:
        return 'is empty (0 bytes)'
    try:
        image = mmcv.imfrombytes(data, flag='unchanged')
    except Exception as err:  # each decoding backend (cv2, pillow, turbojpeg) raises its own
        return f'cannot be decoded ({type(err).__name__}: {err})'
    if image is None:
        return f'is not an image mmcv can decode ({len(data)} bytes, starting {data[:8]!r})'
    return None


def name_unreadable_images(cfg: Config) -> None:
    """Load every dataset's images with ``NamedLoadImageFromFile``, whose errors name the file, and
    import it wherever the config this run dumps is run again."""
    from . import transforms  # noqa: F401 (registers the loader)
    for _, dataset in phase_datasets(cfg, ('train', 'val', 'test')):
        for step in dataset.get('pipeline') or []:
            if step.get('type') == 'LoadImageFromFile':
                step['type'] = 'NamedLoadImageFromFile'
    imports = cfg.setdefault('custom_imports', ConfigDict(imports=[])).setdefault('imports', [])
    if 'mambaout_mm.datasets.transforms' not in imports:
        imports.append('mambaout_mm.datasets.transforms')
