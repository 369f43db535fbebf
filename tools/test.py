"""Evaluate a checkpoint of a detector or segmentor (mmdet or mmseg, by the config's scope).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE|DIR] [--show-dir DIR]
                         [--tta] [--cfg-options KEY=VALUE ...] [--launcher ...]

The metrics are also written to WORK_DIR/test_metrics.json (test_metrics_tta.json with --tta),
which tools/report.py reads. Everything that can be checked before the Runner starts is checked
first, and every problem found is reported in one message.
"""
import argparse
import json
import os.path as osp

from mambaout_mm.engine.checkpoint_fit import check_checkpoint_loads
from mambaout_mm.engine.run_checks import check_backbone, check_mmcv_and_datasets
from mambaout_mm.engine.runner import (
    build_runner,
    enable_output,
    enable_tta,
    enable_visualization,
    end_distributed,
    setup_launcher,
    start,
)
from mambaout_mm.utils import cli
from mambaout_mm.weights.checkpoint import local_checkpoint


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='test config: a file, or mambaout_mm::/mmdet::/mmseg::PATH')
    parser.add_argument('checkpoint', help='checkpoint file or URL')
    parser.add_argument('--out', help='detection: dump predictions to this .pkl; '
                                      'segmentation: save predicted label maps into this dir')
    parser.add_argument('--show-dir', help='draw predictions into this dir')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation (multi-scale and flip)')
    return cli.add_run_args(parser).parse_args()


def main() -> None:
    args = parse_args()
    cfg, problems = start(args)
    with problems.check():
        cfg.load_from = local_checkpoint(args.checkpoint, must_exist=True)
    check_checkpoint_loads(cfg)  # a checkpoint of another model is refused, not tested
    with problems.check():
        check_backbone(cfg)
    for option, enable in ((args.show_dir, enable_visualization), (args.out, enable_output)):
        if option:
            with problems.check():
                enable(cfg, option)
    if args.tta:
        with problems.check():
            enable_tta(cfg)
    check_mmcv_and_datasets(problems, cfg, ('test',))
    problems.raise_all()
    setup_launcher(cfg, args.launcher)
    runner = build_runner(cfg)
    metrics = runner.test()
    from mmengine.dist import is_main_process
    if is_main_process():
        path = osp.join(cfg.work_dir, 'test_metrics_tta.json' if args.tta else 'test_metrics.json')
        with open(path, 'w') as f:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint, tta=args.tta,
                           metrics={k: float(v) for k, v in metrics.items()}), f, indent=2)
        runner.logger.info(f'Metrics written to {path}')
    end_distributed()


if __name__ == '__main__':
    cli.run(main)
