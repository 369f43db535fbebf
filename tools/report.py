"""Tabulate test results of work dirs beside the paper's tables or the peers' results, plotted.

Runs of the paper's recipes go beside Tables 2 and 3; runs of a head family with published peer
results (DINO, RetinaNet, ...: mambaout_mm/data/published_costs.json) beside those, with the
metrics the config's evaluators report.

    python tools/report.py WORK_DIR [WORK_DIR ...] [--format markdown|csv] [--plot FILE.png]
                           [--no-macs]

Each WORK_DIR holds test_metrics.json (and test_metrics_tta.json for mIoU MS) as tools/test.py
writes them. Params and MACs of our models are counted at the paper's input sizes (slow for the
full-size models: tens of seconds per config); --no-macs skips them. --plot draws AP box (det) or
mIoU SS (seg) against MACs with every paper row, as the paper's Figure 1(b).
"""
from __future__ import annotations

import argparse
import sys

from mambaout_mm.evaluation.report import (
    format_csv,
    format_markdown,
    load_run,
    plot_report,
    report_tables,
)
from mambaout_mm.utils import cli


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+', help='work dirs evaluated by tools/test.py')
    parser.add_argument('--format', choices=['markdown', 'csv'], default='markdown')
    parser.add_argument('--plot', metavar='FILE.png', help='also plot the metric against MACs')
    parser.add_argument('--no-macs', action='store_true',
                        help='skip counting Params and MACs (fast; no --plot)')
    args = cli.add_debug_flag(parser).parse_args()
    if args.plot and args.no_macs:
        parser.error('--plot places our runs by their MACs; drop --no-macs.')
    return args


def main() -> None:
    args = parse_args()
    tables = report_tables([load_run(d) for d in args.work_dirs], macs=not args.no_macs)
    print(format_csv(tables) if args.format == 'csv' else format_markdown(tables), end='')
    if args.plot:
        plot_report(tables, args.plot)
        print(f'Plot written to {args.plot}', file=sys.stderr)


if __name__ == '__main__':
    cli.run(main)
