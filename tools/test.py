"""Evaluate a checkpoint of a detector or segmentor (mmdet or mmseg, by the config's scope).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE|DIR] [--show-dir DIR]
                         [--tta] [--cfg-options KEY=VALUE ...] [--launcher ...]

The metrics are also written to WORK_DIR/test_metrics.json (test_metrics_tta.json with --tta),
which tools/report.py reads.
"""
import argparse
import json
import os.path as osp

from mmengine.config import DictAction
from mmengine.dist import is_main_process

from mambaout_mm.data_check import check_datasets, name_unreadable_images
from mambaout_mm.runtime import (RunSetupError, build_runner, check_device, end_distributed,
                                 enable_output, enable_tta, enable_visualization, load_config,
                                 local_checkpoint, local_rank_env, select_device,
                                 setup_launcher)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file or URL')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--out', help='detection: dump predictions to this .pkl; '
                                      'segmentation: save predicted label maps into this dir')
    parser.add_argument('--show-dir', help='draw predictions into this dir')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation (multi-scale and flip)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--device', choices=['cuda', 'cpu'],
                        help='default: the GPUs if torch sees any, else the CPU (a GPU config, '
                             'e.g. the Table 2/3 ones, then needs --device cpu)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=None)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    local_rank_env(args.local_rank)
    select_device(args.device)
    try:
        cfg = load_config(args.config, args.cfg_options, args.work_dir)
        check_device(cfg, args.device, args.launcher)
        cfg.load_from = local_checkpoint(args.checkpoint)
        if args.show_dir:
            enable_visualization(cfg, args.show_dir)
        if args.out:
            enable_output(cfg, args.out)
        if args.tta:
            enable_tta(cfg)
        name_unreadable_images(cfg)
        check_datasets(cfg, ('test',))
        setup_launcher(cfg, args.launcher)
    except RunSetupError as err:
        raise SystemExit(f'error: {err}') from None
    runner = build_runner(cfg)
    metrics = runner.test()
    if is_main_process():
        path = osp.join(cfg.work_dir, 'test_metrics_tta.json' if args.tta else 'test_metrics.json')
        with open(path, 'w') as f:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint, tta=args.tta,
                           metrics={k: float(v) for k, v in metrics.items()}), f, indent=2)
        runner.logger.info(f'Metrics written to {path}')
    end_distributed()


if __name__ == '__main__':
    main()
