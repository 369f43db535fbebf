"""Head families beyond the paper's tables (DINO, RetinaNet, Mask2Former, ...): the toolbox config
a config derives from and what it lists as different, and the metrics its evaluators report.

A config's *family* is the toolbox config (``mmdet::...`` or ``mmseg::...``) at the root of its
``_base_`` chain: our DINO configs derive from ``mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py``.
Nothing here lists the families: a config's ``_base_`` names its family, the config itself lists
what differs from it (``differences_from_base``: dotted path -> reason), the package's
``data/published_costs.json`` holds the peers' published results under the family's name
(``published_results``: :func:`.published_costs.published_results`), and the evaluators in the
config say which metrics a run reports.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from mmengine.config import Config

from ..utils.config import resolve_config_path

#: Keys every config of ours may add to its toolbox base without listing them (listing them is
#: fine too): the import that registers MambaOut, and the list of differences itself.
IMPLICIT_DIFFERENCES = ('custom_imports', 'differences_from_base')


def toolbox_base(config: str | Path) -> str | None:
    """The toolbox config at the root of ``config``'s ``_base_`` chain, written as its ``_base_``
    names it (``mmdet::...``), or None where the chain ends in a list of bases or in none."""
    path = Path(resolve_config_path(str(config)))
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == '_base_'
                                                for t in node.targets):
            if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                return None
            base = node.value.value
            if base.startswith(('mmdet::', 'mmseg::')):
                return base
            return toolbox_base(base if '::' in base else path.parent / base)
    return None


def _plain(value: Any) -> Any:
    """A config value as plain data: no ``_scope_`` keys (mmengine adds them to what a config
    inherits from another package), tuples as lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _leaves(value: Any, path: str = '') -> Iterator[tuple[str, Any]]:
    """``(dotted path, value)`` of every setting: dicts and lists of dicts (pipelines, schedulers)
    are walked, anything else is one setting."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, f'{path}.{key}' if path else str(key))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, item in enumerate(value):
            yield from _leaves(item, f'{path}.{i}')
    else:
        yield path, value


def differing_settings(ours: dict, base: dict) -> set[str]:
    """Dotted paths of the settings that differ between two configs (``Config.to_dict()``), or
    that one has and the other has not."""
    mine, theirs = dict(_leaves(_plain(ours))), dict(_leaves(_plain(base)))
    missing = object()
    return {path for path in mine.keys() | theirs.keys()
            if mine.get(path, missing) != theirs.get(path, missing)}


def _covers(listed: str, path: str) -> bool:
    return path == listed or path.startswith(listed + '.')


class Differences(NamedTuple):
    """A config against its toolbox base: what differs without being listed, and what is listed
    without differing."""
    unlisted: list[str]
    stale: list[str]


def compare_with_base(ours: dict, base: dict) -> Differences:
    """Compare a config (``Config.to_dict()``) with the toolbox config it derives from: every
    differing setting must be listed (itself or a parent) in its ``differences_from_base``, and
    every listed path must differ."""
    listed = dict(ours.get('differences_from_base') or {})
    differing = {path for path in differing_settings(ours, base)
                 if not any(_covers(key, path) for key in IMPLICIT_DIFFERENCES)}
    unlisted = sorted(p for p in differing if not any(_covers(key, p) for key in listed))
    stale = sorted(key for key in listed if key not in IMPLICIT_DIFFERENCES
                   and not any(_covers(key, p) for p in differing))
    return Differences(unlisted, stale)


def check_differences(config: str | Path) -> Differences:
    """:func:`compare_with_base` of a config file and its family's toolbox config."""
    base = toolbox_base(config)
    if base is None:
        raise ValueError(f'{config} does not derive from one toolbox config (its _base_ chain '
                         'ends in a list of bases or in none).')
    ours = Config.fromfile(resolve_config_path(str(config)))
    theirs = Config.fromfile(resolve_config_path(base), import_custom_modules=False)
    return compare_with_base(ours.to_dict(), theirs.to_dict())


class Metric(NamedTuple):
    """A column of results: its title, its key in a metrics file, read from the ``--tta`` file or
    not, its key in a published row, and the factor to percent."""
    name: str
    key: str
    tta: bool
    row_key: str
    scale: float


def coco_metrics(kinds: list[str]) -> tuple[Metric, ...]:
    """AP, AP50, AP75 of each of ``bbox``/``segm`` as mmdet's ``CocoMetric`` names them."""
    short = {'bbox': 'APb', 'segm': 'APm'}
    return tuple(Metric(name, f'coco/{kind}_mAP{sfx}', False, f'{kind}_mAP{sfx}', 100.)
                 for kind in kinds if kind in short
                 for sfx, name in (('', short[kind]), ('_50', f'{short[kind]}50'),
                                   ('_75', f'{short[kind]}75')))


def _evaluator_metrics(evaluator: dict) -> tuple[Metric, ...]:
    kind = evaluator.get('type')
    if kind == 'CocoMetric':
        names = evaluator.get('metric', 'bbox')
        return coco_metrics([names] if isinstance(names, str) else list(names))
    if kind == 'CocoPanopticMetric':
        prefix = evaluator.get('prefix') or 'coco_panoptic'
        return tuple(Metric(name, f'{prefix}/{name}', False, name, 1.)
                     for name in ('PQ', 'SQ', 'RQ'))
    if kind == 'IoUMetric':
        return (Metric('mIoU SS', 'mIoU', False, 'mIoU', 1.),
                Metric('mIoU MS', 'mIoU', True, 'mIoU_ms', 1.))
    return ()


def config_metrics(cfg: Config) -> tuple[Metric, ...]:
    """The columns a config's test evaluators report (one evaluator or a list of them), in their
    order; an evaluator this module does not know adds none."""
    evaluators = cfg.get('test_evaluator') or cfg.get('val_evaluator') or []
    if isinstance(evaluators, dict):
        evaluators = [evaluators]
    columns: dict[str, Metric] = {}
    for evaluator in evaluators:
        for metric in _evaluator_metrics(evaluator):
            columns.setdefault(metric.name, metric)
    return tuple(columns.values())
