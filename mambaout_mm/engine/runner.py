"""What ``tools/train.py`` and ``tools/test.py`` do to a loaded config before the Runner starts:
the device and the launcher, hooks every run gets, the test-time options (whose keys differ between
mmdetection and mmsegmentation), and the Runner itself. Reading configs is
:mod:`mambaout_mm.utils.config`, the checks before a run :mod:`mambaout_mm.engine.run_checks`, mixed
precision :mod:`mambaout_mm.engine.amp`."""
from __future__ import annotations

import argparse
import os

import torch
from mmengine.config import Config

from ..utils.config import load_config, toolbox
from ..utils.errors import RunSetupError
from .run_checks import Problems, check_device


def start(args: argparse.Namespace) -> tuple[Config, Problems]:
    """The start ``tools/train.py`` and ``tools/test.py`` share (their flags:
    :func:`mambaout_mm.utils.cli.add_run_args`): the local rank and the device, the config with
    ``--cfg-options`` and ``--work-dir``, and the list of problems begun with the device check."""
    local_rank_env(args.local_rank)
    select_device(args.device)
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    problems = Problems()
    with problems.check():
        check_device(cfg, args.device, args.launcher)
    return cfg, problems


def select_device(device: str | None) -> None:
    """``--device cpu`` hides the GPUs from this process (before CUDA is initialised); ``cuda``
    or ``None`` leaves them."""
    if device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Distributed runs: NCCL on GPUs; on CPUs gloo and DDP without device_ids (mmengine assumes
    CUDA for both)."""
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    if launcher == 'pytorch' and not torch.distributed.is_initialized():
        # mmengine's own init calls torch.cuda.set_device(LOCAL_RANK), which fails without CUDA.
        torch.distributed.init_process_group(backend='gloo')


def enable_visualization(cfg: Config, show_dir: str) -> None:
    """``--show-dir``: draw test predictions into ``show_dir`` (each toolbox has its own key)."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise RunSetupError('--show-dir needs default_hooks.visualization in the config.')
    hook['draw'] = True
    hook['interval'] = 1
    if toolbox(cfg) == 'mmdet':
        hook['test_out_dir'] = show_dir
    else:
        cfg.visualizer['save_dir'] = show_dir


def enable_output(cfg: Config, out: str) -> None:
    """``--out``: mmdet dumps predictions to a ``.pkl``; mmseg writes label PNGs into a folder."""
    if toolbox(cfg) == 'mmdet':
        if not out.endswith(('.pkl', '.pickle')):
            raise RunSetupError(f'--out for detection must be a .pkl file, got {out}.')
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) \
            else [cfg.test_evaluator]
        cfg.test_evaluator = [*evaluators, dict(type='DumpDetResults', out_file_path=out)]
    else:
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True


def enable_tta(cfg: Config) -> None:
    """``--tta``: wrap the model in the config's ``tta_model`` and test with ``tta_pipeline``."""
    if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
        raise RunSetupError('--tta needs tta_model and tta_pipeline in the config.')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def build_runner(cfg: Config):
    """The Runner a config asks for (``runner_type``), in the config's toolbox scope."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def end_distributed() -> None:
    """Destroy the process group of a finished distributed run: on torch 2.1 a gloo group left
    to the interpreter's exit can abort it ("terminate called without an active exception")."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def local_rank_env(local_rank: int | None) -> None:
    """Old launchers pass ``--local_rank``; mmengine reads ``LOCAL_RANK``."""
    if local_rank is not None and 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)
