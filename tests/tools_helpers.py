"""Running the project's command-line tools the way a user does, in a subprocess."""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The tools' tests are CPU tests wherever they run: GPUs hidden (the GPU suite has its own).
CPU_ONLY = {'CUDA_VISIBLE_DEVICES': ''}
#: The tools' own torch hub cache (so a URL is never found cached from elsewhere), removed at exit.
TORCH_HOME = tempfile.mkdtemp(prefix='mambaout-mm-tests-torch-home-')
atexit.register(shutil.rmtree, TORCH_HOME, ignore_errors=True)
#: No network for the tools, whatever the machine has: downloads go through a proxy that refuses
#: them, into TORCH_HOME.
OFFLINE = {**{name: 'http://127.0.0.1:9' for name in
              ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY')},
           'no_proxy': '', 'NO_PROXY': '',
           'TORCH_HOME': TORCH_HOME}
#: --cfg-options that keep data loading in the main process (tiny datasets, quick start-up).
IN_PROCESS_LOADERS = [f'{split}_dataloader.{key}'
                      for split in ('train', 'val', 'test')
                      for key in ('num_workers=0', 'persistent_workers=False')]
#: --cfg-options that keep a briefly trained Mask R-CNN's detections: after a few iterations its
#: scores can all lie below mmdet's 0.05 (seen on torch 2.1.2), and COCO evaluation then reports
#: nothing; the tool tests check the tools, not the model.
KEEP_LOW_SCORES = ['model.test_cfg.rcnn.score_thr=0.0']


def run_tool(*args: str, check: bool = True, timeout: float = 600,
             cwd: Path = REPO, gpu: bool = False) -> subprocess.CompletedProcess:
    """``python tools/<args>`` (GPUs hidden unless ``gpu``); on an unexpected exit code the
    output is in the assertion."""
    env = dict(os.environ, PYTHONWARNINGS='ignore', PYTHONUNBUFFERED='1', **OFFLINE,
               **({} if gpu else CPU_ONLY))
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-5000:]}')
    return proc


def checkpoint_meta(path: Path) -> dict:
    """The ``meta`` of a checkpoint saved by mmengine's Runner (loaded safely where torch can)."""
    from mambaout_mm.weights import safe_load
    return safe_load.load(path)['meta']


def tool(name: str) -> str:
    return str(REPO / 'tools' / name)


def config(path: str) -> str:
    return str(REPO / 'configs' / path)


def unscoped(value):
    """A config value without the ``_scope_`` keys mmengine adds to what a config inherits from
    another package (``mmdet::...``), for comparing it with that package's own config."""
    if isinstance(value, dict):
        return {k: unscoped(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return type(value)(unscoped(v) for v in value)
    return value


def kill_after_first_checkpoint(*args: str, work_dir: Path, cwd: Path,
                                timeout: float = 300) -> None:
    """Start ``python tools/<args>`` and SIGKILL it once its first checkpoint is complete."""
    env = dict(os.environ, PYTHONWARNINGS='ignore', **CPU_ONLY)
    proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while not (work_dir / 'last_checkpoint').exists():  # written after the checkpoint
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f'{args} ended (or hung) before its first checkpoint')
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
