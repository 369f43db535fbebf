"""Check a config's datasets before a long run: every image (and label map) its samples name is
read and decoded, and each file that is missing, empty or not an image is listed.

    python tools/check_dataset.py CONFIG [--phases train val test] [--cfg-options KEY=VALUE ...]

Exits 0 when every file decodes; 1 when some do not (listed), or when the config or a dataset is
missing, empty or damaged (one ``error:`` line).
"""
from __future__ import annotations

import argparse
import os
from concurrent.futures import ThreadPoolExecutor

from mmengine.config import DictAction

from mambaout_mm.datasets.data_check import IMAGE_KEYS, build_dataset, check_datasets, image_problem
from mambaout_mm.utils import cli
from mambaout_mm.utils.config import load_config
from mambaout_mm.utils.errors import RunSetupError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument('--phases', nargs='+', default=['train', 'val', 'test'],
                        choices=('train', 'val', 'test'), help='whose datasets to check')
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1,
                        help='files decoded at once (threads)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in tools/train.py')
    return cli.add_debug_flag(parser).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    checked = check_datasets(cfg, tuple(dict.fromkeys(args.phases)))
    unreadable = 0
    seen: set[str] = set()  # val and test often share one dataset
    for phase, dataset_cfg, dataset in checked:
        dataset = dataset if dataset is not None else build_dataset(cfg, dataset_cfg)
        samples = [dataset.get_data_info(i) for i in range(len(dataset))]
        paths = [s[key] for s in samples for key in IMAGE_KEYS if s.get(key)]
        paths = [p for p in dict.fromkeys(paths) if p not in seen]
        seen.update(paths)
        backend_args = dataset_cfg.get('backend_args')
        with ThreadPoolExecutor(max(args.workers, 1)) as pool:
            problems = [(path, problem) for path, problem in
                        zip(paths, pool.map(image_problem, paths, [backend_args] * len(paths)))
                        if problem]
        print(f'{phase}: {dataset_cfg.type}, {len(samples)} samples, {len(paths)} new files, '
              f'{len(problems)} unreadable')
        for path, problem in problems:
            print(f'  {path} {problem}')
        unreadable += len(problems)
    if unreadable:
        raise RunSetupError(f'{unreadable} unreadable files (listed above): replace them, or '
                            f'remove their samples from the annotations.')
    return 0


if __name__ == '__main__':
    cli.run(main)
