"""Shared fixtures: random-weight stand-ins for the official and timm MambaOut checkpoints."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mambaout_mm import MambaOut
from mambaout_mm.models.random_weights import randomize_


def pytest_collection_modifyitems(config, items) -> None:
    """``gpu`` tests are deselected, and reported so, where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    gpu = [item for item in items if item.get_closest_marker('gpu')]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if not item.get_closest_marker('gpu')]
        config._mambaout_gpu_deselected = len(gpu)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    count = getattr(config, '_mambaout_gpu_deselected', 0)
    if count:
        terminalreporter.write_line(f'{count} GPU tests deselected, not run: torch sees no CUDA '
                                    'device (run them with `make test-gpu` on a GPU machine).')


@pytest.fixture(scope='session')
def official_femto(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """An official-layout femto checkpoint (plain state_dict, as released), random weights."""
    state_dict = randomize_(MambaOut('femto')).state_dict()
    path = tmp_path_factory.mktemp('ckpt') / 'mambaout_femto.pth'
    torch.save(state_dict, path)
    return path, state_dict


@pytest.fixture
def offline(monkeypatch, tmp_path) -> Path:
    """No network in this process (downloads refused by a closed proxy port) and an empty hub
    cache; returns the cache's ``checkpoints`` folder."""
    for name in ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY'):
        monkeypatch.setenv(name, 'http://127.0.0.1:9')
    monkeypatch.setenv('no_proxy', '')
    monkeypatch.setenv('NO_PROXY', '')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    return tmp_path / 'torch_home' / 'hub' / 'checkpoints'
