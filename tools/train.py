"""Train a detector or segmentor from a config (mmdet or mmseg, chosen by its default_scope).

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr] [--resume [CKPT]]
                          [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse

from mmengine.config import DictAction
from mmengine.logging import print_log
from mmengine.runner import find_latest_checkpoint

from mambaout_mm.data_check import check_datasets, name_unreadable_images
from mambaout_mm.runtime import (RunSetupError, build_runner, check_device, end_distributed,
                                 check_pretrained_weights, drop_missing_pretrained,
                                 load_config, local_checkpoint, local_rank_env,
                                 setup_amp, select_device, setup_launcher)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: FP16 on a GPU, bfloat16 autocast on a CPU')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by total batch size / auto_scale_lr.base_batch_size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or without a value from the latest checkpoint '
                             'in the work dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_cfg.max_epochs=24')
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
        amp = setup_amp(cfg, args.amp)
        if args.auto_scale_lr:
            if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
                raise RunSetupError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the '
                                    'config.')
            cfg.auto_scale_lr.enable = True
        if args.resume == 'auto':
            cfg.resume, cfg.load_from = True, None
        elif args.resume is not None:
            cfg.resume, cfg.load_from = True, args.resume
        if cfg.get('load_from'):
            cfg.load_from = local_checkpoint(cfg.load_from)
        starts_from = cfg.get('load_from') or (
            cfg.get('resume') and find_latest_checkpoint(cfg.work_dir))
        # a run's own checkpoint replaces the ImageNet weights: their files are not needed
        skipped = drop_missing_pretrained(cfg.model) if starts_from else []
        if not starts_from:
            check_pretrained_weights(cfg)
        name_unreadable_images(cfg)
        check_datasets(cfg, ('train', 'val'))
        setup_launcher(cfg, args.launcher)
    except RunSetupError as err:
        raise SystemExit(f'error: {err}') from None
    runner = build_runner(cfg)
    if skipped:
        print_log(f'Starting from {starts_from}: not loading the missing pretrained weights '
                  f'{", ".join(skipped)}.', logger='current')
    if amp:
        print_log(f'Mixed precision: {amp}', logger='current')
    runner.train()
    end_distributed()


if __name__ == '__main__':
    main()
