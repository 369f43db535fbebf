"""What tools/setup_env.sh checks before a large install (decided without installing: the
environment it is given has no pip, so an install that went ahead would fail at once)."""
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .tools_helpers import REPO


def setup_env(tmp_path: Path, free_kib: int) -> subprocess.CompletedProcess:
    """tools/setup_env.sh for torch 2.1.2 into a bare environment, on a disk that ``df`` says has
    ``free_kib`` KiB free."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    df = bin_dir / 'df'
    df.write_text('#!/bin/sh\necho "Filesystem 1024-blocks Used Available Capacity Mounted on"\n'
                  f'echo "/dev/x 999999999 0 {free_kib} 1% /"\n')
    df.chmod(0o755)
    env_dir = tmp_path / 'venv'
    venv.create(env_dir, with_pip=False)
    return subprocess.run(['bash', str(REPO / 'tools' / 'setup_env.sh')], capture_output=True,
                          text=True, timeout=120,
                          env={'PATH': f'{bin_dir}:/usr/bin:/bin', 'HOME': str(tmp_path),
                               'VENV': str(env_dir), 'PYTHON': sys.executable, 'TORCH': '2.1.2'})


def test_a_torch_install_stops_first_where_the_disk_is_short_naming_what_to_free(tmp_path):
    proc = setup_env(tmp_path, free_kib=3 * 1024 ** 2)
    assert proc.returncode == 1
    assert 'needs about 10 GiB free' in proc.stderr and 'it has 3 GiB' in proc.stderr
    assert 'pytest-of-' in proc.stderr and 'No module named pip' not in proc.stderr


@pytest.mark.parametrize('free_gib', [10, 200])
def test_a_torch_install_goes_ahead_where_the_disk_has_room(tmp_path, free_gib):
    proc = setup_env(tmp_path, free_kib=free_gib * 1024 ** 2)
    assert 'GiB free' not in proc.stderr
    assert 'install torch 2.1.2' in proc.stdout and 'No module named pip' in proc.stderr
