"""Write, or check, the model index of OpenMMLab's tools: ``configs/FAMILY/metafile.yml`` for each
config family and ``mambaout_mm/.mim/model-index.yml`` importing them, in mmdet's form (read by
``mim search mambaout_mm`` and ``mmengine.hub.get_config('mambaout_mm::...')``).

    python tools/model_index.py            # write them
    python tools/model_index.py --check    # fail naming each file that differs (a test runs it)

The one rule of what is listed (``listed_configs``): every ``configs/FAMILY/*.py``, where FAMILY is
a folder of configs/ other than ``peers/`` (ConvNeXt and Swin for comparison: mmdet and mmseg
index their own), and neither starts with ``_`` (OpenMMLab's bases). Configs named ``*_femto_*``
are the CPU demos on generated data: listed with what they train on, without costs or results.

Nothing is typed in here. Each entry reads its config (backbone and its ImageNet weights, data,
schedule, batch, optimizer); Params and MACs come from published_costs.json, where it has them;
Results only where the config is a paper table's recipe, that table's row of paper_results.json,
with ``Results Source`` saying whose they are: nothing was trained on COCO or ADE20K with this code.
There are no trained weights, so no entry has ``Weights`` (mmengine's ``get_config(...,
pretrained=True)`` says so); the backbone's are ``Backbone Weights``.
"""
from __future__ import annotations

import argparse
import fnmatch
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from mambaout_mm.evaluation.paper import paper_recipe, paper_table
from mambaout_mm.evaluation.published_costs import TABLE_NAMES, published_cost
from mambaout_mm.evaluation.report import backbone_name, run_recipe
from mambaout_mm.utils import cli
from mambaout_mm.utils.config import load_config, task
from mambaout_mm.utils.errors import UserError

REPO = Path(__file__).resolve().parents[1]
NOT_FAMILIES = ('peers',)        # folders of configs/ that are not indexed
DEMOS = '*_femto_*.py'           # the CPU demos on generated data
#: How mmdet and mmseg name the methods (``In Collection``); another family goes by its folder.
COLLECTIONS = {'mask_rcnn': 'Mask R-CNN', 'cascade_mask_rcnn': 'Cascade Mask R-CNN',
               'upernet': 'UPerNet', 'retinanet': 'RetinaNet', 'dino': 'DINO',
               'mask2former': 'Mask2Former'}
DATASETS = {'CocoDataset': 'COCO', 'CocoPanopticDataset': 'COCO', 'ADE20KDataset': 'ADE20K'}
#: The paper tables' columns, as mmdet and mmseg name them in their metafiles.
METRICS = {'detection': [('Object Detection', {'box AP': 'bbox_mAP'}),
                         ('Instance Segmentation', {'mask AP': 'segm_mAP'})],
           'segmentation': [('Semantic Segmentation', {'mIoU': 'mIoU_ss', 'mIoU(ms)': 'mIoU_ms'})]}
HEADER = ('# Written by tools/model_index.py from the configs and mambaout_mm/data/*.json: edit '
          'those,\n# then run it. Results, where present, are the paper\'s (Results Source).\n')


class ModelIndexError(UserError, RuntimeError):
    """The committed model index is not what the configs and data files give."""


def listed_configs(configs: Path) -> dict[str, list[Path]]:
    """The configs the index lists, by family (the rule above)."""
    families = {}
    for folder in sorted(p for p in configs.iterdir() if p.is_dir()):
        if folder.name in NOT_FAMILIES or folder.name.startswith(('_', '.')):
            continue
        files = sorted(p for p in folder.glob('*.py') if not p.name.startswith('_'))
        if files:
            families[folder.name] = files
    return families


def _paper() -> dict[str, str]:
    cited = yaml.safe_load((REPO / 'CITATION.cff').read_text())['preferred-citation']
    return {'Title': cited['title'], 'URL': cited['url']}


def _results(cfg: Any, kind: str, backbone: str, dataset: str) -> tuple[list, str] | None:
    """The paper's results for this config, if it is a paper table's recipe, and their source."""
    rows = paper_table(kind)
    recipe = run_recipe(cfg, kind)
    if backbone not in rows or any(recipe.get(k) != v for k, v in paper_recipe(kind).items()):
        return None
    row = rows[backbone]
    results = [{'Task': name, 'Dataset': dataset,
                'Metrics': {metric: row[column] for metric, column in metrics.items()}}
               for name, metrics in METRICS[kind]]
    return results, (f'{TABLE_NAMES[kind]}, {backbone}: the paper\'s figures, not trained or '
                     'measured with this code')


@lru_cache(maxsize=None)
def _config(path: str, mtime_ns: int) -> Any:
    """A config as the tools read it, once per version of its file."""
    return load_config(path)


def entry(path: Path, family: str) -> dict[str, Any]:
    """One config's entry in its family's metafile."""
    cfg = _config(str(path), path.stat().st_mtime_ns)
    kind, model = task(cfg), cfg.model
    backbone = backbone_name(model.backbone.get('arch'), model.backbone.type)
    collection = COLLECTIONS.get(family, family)
    demo = fnmatch.fnmatch(path.name, DEMOS)
    dataset = cfg.train_dataloader.dataset
    while isinstance(dataset.get('dataset'), dict):  # RepeatDataset, ...
        dataset = dataset.dataset
    data = DATASETS.get(dataset.type, dataset.type)
    batch = cfg.train_dataloader.batch_size
    total = cfg.get('auto_scale_lr', {}).get('base_batch_size', batch)
    optim = cfg.optim_wrapper
    meta: dict[str, Any] = {'Architecture': [backbone, collection]}
    init = model.backbone.get('init_cfg') or {}
    if init.get('checkpoint'):
        meta['Backbone Weights'] = init.checkpoint
    if demo:
        meta.update({'Training Data': f'generated ({dataset.get("data_root", "")})',
                     'Training Resources': 'CPU', 'Batch Size': batch})
    else:
        meta.update({'Training Data': data, 'Batch Size': total,
                     'Training Resources': f'{total // batch} GPUs x {batch} images'})
    train_cfg = cfg.get('train_cfg') or {}
    for key, name in (('max_epochs', 'Epochs'), ('max_iters', 'Iterations')):
        if train_cfg.get(key):
            meta[name] = train_cfg[key]
    meta['Training Techniques'] = [optim.get('optimizer', {}).get('type', optim.get('type'))] + (
        ['Mixed Precision Training'] if optim.get('type') == 'AmpOptimWrapper' else [])
    cost = None if demo else published_cost(str(path))
    if cost:
        meta.update({'Params (M)': cost['params_m'], 'MACs (G)': cost['macs_g'],
                     'Costs Source': cost['source']})
    results = None if demo else _results(cfg, kind, backbone, data)
    if results:
        meta['Results Source'] = results[1]
    item = {'Name': path.stem, 'In Collection': collection,
            'Config': f'configs/{family}/{path.name}', 'Metadata': meta}
    if results:
        item['Results'] = results[0]
    item['Paper'] = _paper()
    return item


def _dump(data: dict) -> str:
    return HEADER + yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True)


def expected_files(configs: Path, index: Path) -> dict[Path, str]:
    """Every metafile and the model index, as this tool writes them."""
    families = listed_configs(configs)
    files = {configs / family / 'metafile.yml': _dump({
        'Collections': [{'Name': COLLECTIONS.get(family, family), 'Paper': _paper()}],
        'Models': [entry(path, family) for path in paths]}) for family, paths in families.items()}
    files[index] = _dump({'Import': [f'configs/{family}/metafile.yml' for family in families]})
    return files


def stale_files(configs: Path, index: Path) -> list[str]:
    """What differs from what this tool writes: files to rewrite, and metafiles of no family."""
    files = expected_files(configs, index)
    stale = [str(path) for path, text in files.items()
             if not path.is_file() or path.read_text() != text]
    stale += [f'{path} (no family: remove it)' for path in sorted(configs.glob('*/metafile.yml'))
              if path not in files]
    return stale


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--check', action='store_true',
                        help='write nothing; fail if a file differs from what it would write')
    parser.add_argument('--configs', type=Path, default=REPO / 'configs', help='config tree')
    parser.add_argument('--index', type=Path, default=REPO / 'mambaout_mm' / '.mim' /
                        'model-index.yml', help='the model index to write')
    return cli.add_debug_flag(parser).parse_args()


def main() -> None:
    args = parse_args()
    if args.check:
        stale = stale_files(args.configs, args.index)
        if stale:
            raise ModelIndexError('the model index is not what the configs and data files give; '
                                  'run python tools/model_index.py to rewrite: '
                                  + ', '.join(stale))
        print(f'model index up to date: {len(listed_configs(args.configs))} families')
        return
    for path, text in expected_files(args.configs, args.index).items():
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f'wrote {path}')


if __name__ == '__main__':
    cli.run(main)
