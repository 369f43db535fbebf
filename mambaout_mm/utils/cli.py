"""What every command-line tool shares: quiet start-up, ``--debug``, and errors as one line.

A tool calls :func:`run` on its ``main``. A :class:`~mambaout_mm.utils.errors.UserError`, or
the deployment runtime's :class:`~mambaout_deploy.errors.DeployError` (known problems whose
messages say what to do), then ends the tool with ``error: MESSAGE`` on stderr and exit code 1;
``--debug`` or ``MAMBAOUT_MM_DEBUG=1`` shows its traceback instead. Any other
exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Callable

from mambaout_deploy.errors import DeployError

from .errors import UserError

DEBUG_ENV = 'MAMBAOUT_MM_DEBUG'

# mmengine 0.10 and mmcv 2.1 import setuptools' pkg_resources, which warns on import that it is
# deprecated; the tools start without that noise (it says nothing about the user's run).
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)


def add_debug_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument('--debug', action='store_true',
                        help=f'show the traceback of a known error (or set {DEBUG_ENV}=1)')
    return parser


def debugging(argv: list[str] | None = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return '--debug' in argv or os.environ.get(DEBUG_ENV, '') not in ('', '0')


def message(err: UserError) -> str:
    """What to print of ``err``: its message; for one re-raised from a DataLoader worker, which
    carries the worker's traceback, the message at its end."""
    text = str(err)
    if 'Original Traceback' in text:
        text = text.strip().splitlines()[-1].split(': ', 1)[-1]
    return text


def run(main: Callable[[], object]) -> None:
    """Call ``main`` and exit with the code it returns (0 unless an int); a known error ends as
    one line."""
    try:
        code = main()
    except (UserError, DeployError) as err:
        if debugging():
            raise
        print(f'error: {message(err)}', file=sys.stderr)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


def add_run_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options ``tools/train.py`` and ``tools/test.py`` share (mmdet's and mmseg's names)."""
    from mmengine.config import DictAction
    parser.add_argument('--work-dir', help='the dir for logs, checkpoints and metrics '
                                           '(default: ./work_dirs/CONFIG_NAME)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_cfg.max_epochs=24')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--device', choices=['cuda', 'cpu'],
                        help='default: the GPUs if torch sees any, else the CPU (a GPU config, '
                             'e.g. the Table 2/3 ones, then needs --device cpu)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=None)
    return add_debug_flag(parser)
