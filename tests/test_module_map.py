"""docs/architecture.md's module map names every module and tool, and only files that exist."""
from __future__ import annotations

import re

from .tools_helpers import REPO

MAP = (REPO / 'docs' / 'architecture.md').read_text()


def mapped_files() -> set[str]:
    """Paths the map's rows name: a row's first cell names paths (bare names beside a path are
    its siblings; a pattern such as ``*.py`` names every file it matches, so a folder of plug-ins
    takes a new one without a new row); a folder's row names that folder's files in its
    description."""
    named = set()
    for row in re.findall(r'^\| `.*$', MAP, flags=re.M):
        path_cell, description = row.split('|')[1:3]
        paths = re.findall(r'`([^`]+)`', path_cell)
        folder = paths[0] if paths[0].endswith('/') else paths[0].rpartition('/')[0] + '/'
        named |= {p if p.startswith(('mambaout_mm/', 'mambaout_deploy/', 'tools/', 'configs/'))
                  else folder + p
                  for p in paths}
        if paths[0].endswith('/'):
            named |= {paths[0] + n for n in re.findall(r'`([\w.]+\.(?:py|sh))`', description)}
    named = {str(f.relative_to(REPO)) for p in named if '*' in p for f in REPO.glob(p)} | {
        p for p in named if '*' not in p}
    return {p for p in named if p.startswith(('mambaout_mm/', 'mambaout_deploy/', 'tools/'))
            and not p.endswith('/')}


def project_files() -> set[str]:
    modules = {p for package in ('mambaout_mm', 'mambaout_deploy')
               for p in REPO.glob(f'{package}/**/*.py') if '.mim' not in p.parts}
    tools = {p for p in REPO.glob('tools/*') if p.name != '__pycache__'}
    return {str(p.relative_to(REPO)) for p in modules | tools}


def test_every_module_and_tool_is_in_the_map():
    assert sorted(project_files() - mapped_files()) == []


def test_the_map_names_only_files_that_exist():
    assert sorted(p for p in mapped_files() if not (REPO / p).exists()) == []
