"""Train a detector or segmentor from a config (mmdet or mmseg, chosen by its default_scope).

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr] [--resume [CKPT]]
                          [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm|mpi]

CONFIG is a file or a packaged config (`mambaout_mm::mask_rcnn/mambaout_tiny_1x.py`, `mmdet::...`).
Everything that can be checked before the Runner starts (config, device, mmcv's ops, weights,
data) is checked first, and every problem found is reported in one message.
"""
import argparse

from mambaout_mm.engine.amp import setup_amp
from mambaout_mm.engine.checkpoint_fit import check_checkpoint_loads
from mambaout_mm.engine.run_checks import (
    check_backbone,
    check_mmcv_and_datasets,
    check_pretrained_weights,
    check_resume,
    drop_unavailable_pretrained,
)
from mambaout_mm.engine.runner import build_runner, end_distributed, setup_launcher, start
from mambaout_mm.utils import cli
from mambaout_mm.utils.config import add_hook
from mambaout_mm.utils.errors import RunSetupError
from mambaout_mm.weights.checkpoint import local_checkpoint


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='train config: a file, or mambaout_mm::/mmdet::/mmseg::PATH')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: FP16 on a GPU, bfloat16 autocast on a CPU')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by total batch size / auto_scale_lr.base_batch_size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or without a value from the latest checkpoint '
                             'in the work dir')
    return cli.add_run_args(parser).parse_args()


def main() -> None:
    args = parse_args()
    cfg, problems = start(args)
    amp = setup_amp(cfg, args.amp)
    add_hook(cfg, 'NonFiniteLossHook')  # a diverged run stops, naming its last checkpoint
    with problems.check():
        if args.auto_scale_lr and 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise RunSetupError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the '
                                'config.')
    if args.auto_scale_lr and 'auto_scale_lr' in cfg:
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    with problems.check():
        if cfg.get('resume'):  # the checkpoint resumed: given, or the work dir's latest
            cfg.load_from = check_resume(cfg)
        elif cfg.get('load_from'):
            cfg.load_from = local_checkpoint(cfg.load_from, must_exist=True)
    # a resumed checkpoint must fit the model; one given as load_from may fit in part
    check_checkpoint_loads(cfg, partial=True)
    starts_from = cfg.get('load_from')
    # a run's own checkpoint replaces the ImageNet weights: they are not needed
    skipped = drop_unavailable_pretrained(cfg.model) if starts_from else []
    with problems.check():
        check_backbone(cfg)
    if not starts_from:
        with problems.check():
            check_pretrained_weights(cfg)
    check_mmcv_and_datasets(problems, cfg, ('train', 'val'))
    problems.raise_all()
    setup_launcher(cfg, args.launcher)
    runner = build_runner(cfg)
    from mmengine.logging import print_log
    if skipped:
        print_log(f'Starting from {starts_from}: not loading the pretrained weights '
                  f'{", ".join(skipped)} (not here, and replaced by that checkpoint\'s).',
                  logger='current')
    if amp:
        print_log(f'Mixed precision: {amp}', logger='current')
    runner.train()
    end_distributed()


if __name__ == '__main__':
    cli.run(main)
