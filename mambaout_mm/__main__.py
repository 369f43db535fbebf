"""Run a tool shipped with the package: ``python -m mambaout_mm TOOL [ARGS ...]``.

The tools are the repository's ``tools/*.py`` (in an installed package, ``.mim/tools``, where
``mim`` looks for them too), so an installed wheel trains and tests without a checkout, e.g.
``python -m mambaout_mm train mambaout_mm::mask_rcnn/mambaout_tiny_1x.py``.
"""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent / '.mim' / 'tools'


def tool_names() -> list[str]:
    return sorted(path.stem for path in TOOLS.glob('*.py'))


def main(argv: list[str]) -> None:
    names = tool_names()
    if not argv or argv[0] not in names:
        sys.exit(f'usage: python -m mambaout_mm TOOL [ARGS ...] (TOOL --help for its options)\n'
                 f'tools: {", ".join(names)}')
    script = TOOLS / f'{argv[0]}.py'
    sys.argv = [str(script), *argv[1:]]
    runpy.run_path(str(script), run_name='__main__')


if __name__ == '__main__':
    main(sys.argv[1:])
