"""Params and MACs published for the models configs build, ours and the peers', to check counts
against: read from the package's data file, whose entries either point at a row of the paper's
Tables 2 and 3 or give the figures with their source."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .paper import paper_row

TABLE_NAMES = {'detection': 'MambaOut Table 2', 'segmentation': 'MambaOut Table 3'}


@lru_cache(maxsize=None)
def _data() -> dict[str, Any]:
    return json.loads(resources.files('mambaout_mm').joinpath('data/published_costs.json')
                      .read_text())


def _configs() -> dict[str, dict[str, Any]]:
    return _data()['configs']


def cost_table() -> list[str]:
    """The configs of the costs table beside the peers (``make costs``), as the tools take them:
    ours as ``mambaout_mm::PATH``, the toolboxes' as ``mmdet::``/``mmseg::`` paths."""
    return [config if '::' in config else f'mambaout_mm::{config}'
            for config in _data()['cost_table']]


def config_id(config: str) -> str:
    """How the data file names a config: ``mmdet::...``/``mmseg::...`` as given, ours by its path
    under the last ``configs`` folder (``peers/cascade_mask_rcnn/swin_tiny_3x_ms.py``), also when
    given as ``mambaout_mm::PATH``."""
    if config.startswith('mambaout_mm::'):
        return config.removeprefix('mambaout_mm::')
    if '::' in config:
        return config
    parts = Path(config).resolve().parts
    if 'configs' not in parts:
        return Path(config).name
    start = len(parts) - parts[::-1].index('configs')
    return '/'.join(parts[start:])


def published_cost(config: str) -> dict[str, Any] | None:
    """``dict(params_m, macs_g, source)`` published for the model ``config`` builds, or None."""
    entry = _configs().get(config_id(config))
    if entry is None:
        return None
    if 'paper_row' in entry:
        task, row = entry['paper_row']
        figures = paper_row(task, row)
        return dict(params_m=figures['params_m'], macs_g=figures['macs_g'],
                    source=f'{TABLE_NAMES[task]}, {row}')
    return dict(params_m=entry['params_m'], macs_g=entry['macs_g'], source=entry['source'])


def published_configs() -> list[str]:
    """Every config the data file has figures for, as it names them (see ``config_id``)."""
    return sorted(_configs())


def published_results(family: str | None) -> dict[str, Any] | None:
    """``dict(title, rows)`` published for the peers of a head family (the toolbox config our
    configs of that head derive from, see :mod:`.heads`), or None. Each row has ``model`` and
    ``source``, its metrics under their metric-file names without the evaluator's prefix
    (``bbox_mAP``, ``segm_mAP``, ``PQ``, ``mIoU``), and where published ``params_m``, ``macs_g``
    and the ``config`` that builds it."""
    return _data().get('published_results', {}).get(family) if family else None
