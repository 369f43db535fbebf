"""The paper's reference numbers (Tables 2, 3 and 4), read from the package's one data file."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

TABLES = {
    'imagenet': 'table4_imagenet',
    'detection': 'table2_mask_rcnn_1x_coco',
    'segmentation': 'table3_upernet_160k_ade20k',
}


@lru_cache(maxsize=None)
def _load() -> dict[str, Any]:
    data = resources.files('mambaout_mm').joinpath('data/paper_results.json')
    return json.loads(data.read_text())


def paper_table(task: str) -> dict[str, dict[str, Any]]:
    """Rows of a table: ``'imagenet'`` (by variant), ``'detection'`` or ``'segmentation'`` (by
    backbone name)."""
    if task not in TABLES:
        raise KeyError(f'Unknown table {task!r}; choose one of {sorted(TABLES)}.')
    return _load()[TABLES[task]]['rows']


def paper_recipe(task: str) -> dict[str, Any]:
    """What a table's runs share besides the backbone (``'detection'`` or ``'segmentation'``): the
    detector or segmentor and decode head, dataset, schedule and crop, as config values."""
    if task not in ('detection', 'segmentation'):
        raise KeyError(f'No recipe for table {task!r}; choose detection or segmentation.')
    return _load()[TABLES[task]]['recipe']


def paper_setup(task: str) -> dict[str, Any]:
    """How the authors trained a table's models (``'detection'`` or ``'segmentation'``): optimizer,
    lr, batch, precision and, for segmentation, the drop-path rates per size, with the source of
    each."""
    if task not in ('detection', 'segmentation'):
        raise KeyError(f'No setup for table {task!r}; choose detection or segmentation.')
    return _load()[TABLES[task]]['setup']


def mambaout_rows(task: str) -> dict[str, str]:
    """The table's MambaOut rows by variant: ``{'tiny': 'MambaOut-Tiny', ...}``."""
    return {row.removeprefix('MambaOut-').lower(): row for row in paper_table(task)
            if row.startswith('MambaOut-')}


def paper_row(task: str, backbone: str) -> dict[str, Any]:
    """One row, e.g. ``paper_row('detection', 'MambaOut-Tiny')`` or ``paper_row('imagenet',
    'tiny')``."""
    rows = paper_table(task)
    if backbone not in rows:
        raise KeyError(f'{backbone!r} is not in the paper table {task!r}; rows: {sorted(rows)}.')
    return rows[backbone]
