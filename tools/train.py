"""Train a detector or segmentor from a config (mmdet or mmseg, chosen by its default_scope).

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr] [--resume [CKPT]]
                          [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse

from mmengine.config import DictAction

from mmengine.logging import print_log

from mambaout_mm.runtime import (RunSetupError, build_runner, check_datasets,
                                 check_pretrained_weights, load_config, local_rank_env,
                                 setup_amp, setup_launcher)


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
    parser.add_argument('--local_rank', '--local-rank', type=int, default=None)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    local_rank_env(args.local_rank)
    try:
        cfg = load_config(args.config, args.cfg_options, args.work_dir)
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
        if not cfg.get('resume') and not cfg.get('load_from'):
            check_pretrained_weights(cfg)
        check_datasets(cfg, ('train', 'val'))
        setup_launcher(cfg, args.launcher)
    except RunSetupError as err:
        raise SystemExit(f'error: {err}') from None
    runner = build_runner(cfg)
    if amp:
        print_log(f'Mixed precision: {amp}', logger='current')
    runner.train()


if __name__ == '__main__':
    main()
