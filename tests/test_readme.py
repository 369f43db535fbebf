"""The README's commands exist and take the options it shows, so it cannot drift from the code."""
from __future__ import annotations

import re
import subprocess
from importlib import metadata

import pytest

from .tools_helpers import REPO, run_tool

README = (REPO / 'README.md').read_text()


def readme_commands() -> list[str]:
    """Every command of the README's ``bash`` blocks (continuations joined, comments dropped)
    and of its inline code."""
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', README, flags=re.S):
        for line in block.replace('\\\n', ' ').splitlines():
            line = re.sub(r'\s+#.*$', '', line).strip()
            if line and not line.startswith('#'):
                commands += [part.strip() for part in line.split('&&')]
    commands += re.findall(r'`((?:python|bash|make|pip) [^`]+)`', README)
    return commands


def options_by_tool() -> dict[str, set[str]]:
    tools: dict[str, set[str]] = {}
    for command in readme_commands():
        for script, args in re.findall(r'(?:python|bash) (tools/\w+\.(?:py|sh))([^;|]*)', command):
            tools.setdefault(script, set()).update(re.findall(r'(?<!\S)(--[\w-]+)', args))
        for name, args in re.findall(r'python -m mambaout_mm (\w+)([^;|]*)', command):
            tools.setdefault(f'tools/{name}.py', set()).update(re.findall(r'(?<!\S)(--[\w-]+)',
                                                                          args))
    return tools


TOOLS = options_by_tool()


def test_the_readme_shows_the_tools():
    assert {'tools/train.py', 'tools/test.py', 'tools/dist_train.sh'} <= set(TOOLS)


@pytest.mark.parametrize('script', sorted(s for s in TOOLS if s.endswith('.py')))
def test_a_readme_python_tool_exists_and_takes_its_options(script):
    assert (REPO / script).is_file(), f'{script} is in the README but not in the repository'
    help_text = run_tool(str(REPO / script), '--help').stdout
    for option in TOOLS[script]:
        assert re.search(rf'(?<![\w-]){re.escape(option)}(?![\w-])', help_text), \
            f'the README gives {script} {option}, which its --help does not list'


@pytest.mark.parametrize('script', sorted(s for s in TOOLS if s.endswith('.sh')))
def test_a_readme_shell_tool_exists_and_parses(script):
    assert (REPO / script).is_file(), f'{script} is in the README but not in the repository'
    subprocess.run(['bash', '-n', str(REPO / script)], check=True)


def test_the_readme_make_targets_and_pip_extras_exist():
    targets = set(re.findall(r'^([\w-]+):', (REPO / 'Makefile').read_text(), flags=re.M))
    extras = set(metadata.metadata('mambaout-mm').get_all('Provides-Extra'))
    shown_targets, shown_extras = set(), set()
    for command in readme_commands():
        shown_targets.update(re.findall(r'\bmake ([\w-]+)', command))
        for group in re.findall(r'pip install [^ ]*\.\[([\w,-]+)\]', command):
            shown_extras.update(group.split(','))
    assert {'quickstart', 'test'} <= shown_targets  # the README's two commands
    assert shown_targets <= targets, shown_targets - targets
    assert shown_extras <= extras, shown_extras - extras


def test_the_readme_fits_one_screen_and_links_pages_that_exist():
    assert len(README.splitlines()) <= 250
    for link in re.findall(r'\]\(((?:docs/)?[\w./-]+\.(?:md|png)|LICENSE)\)', README):
        assert (REPO / link).exists(), f'the README links {link}, which does not exist'
