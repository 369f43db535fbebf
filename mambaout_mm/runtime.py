"""What ``tools/train.py`` and ``tools/test.py`` share: config loading, the mixed-precision and
launcher settings, and the settings that differ between mmdetection and mmsegmentation (the checks
made before a run are in :mod:`mambaout_mm.run_checks`)."""
from __future__ import annotations

import importlib
import importlib.util
import os
import os.path as osp
from typing import Any

import torch
from mmengine.config import Config
from mmengine.utils import import_modules_from_strings

from .errors import RunSetupError


def resolve_config_path(path: str) -> str:
    """A config file, or one shipped with a toolbox written ``mmdet::swin/....py``."""
    if '::' not in path:
        if not osp.isfile(path):
            raise RunSetupError(f'config file not found: {path}')
        return path
    package, relative = path.split('::', 1)
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise RunSetupError(f'{path}: package {package!r} is not installed.')
    resolved = osp.join(osp.dirname(spec.origin), '.mim', 'configs', relative)
    if not osp.isfile(resolved):
        raise RunSetupError(f'{path}: no such config in {package} ({resolved}).')
    return resolved


def load_config(path: str, cfg_options: dict | None = None, work_dir: str | None = None) -> Config:
    """Read a config (a file or ``mmdet::``/``mmseg::`` one), apply ``--cfg-options`` and settle
    ``work_dir`` as mmdet/mmseg tools do."""
    path = resolve_config_path(path)
    try:
        cfg = Config.fromfile(path, import_custom_modules=False)
    except ModuleNotFoundError as err:  # a `mmdet::` or `mmseg::` base whose toolbox is missing
        raise RunSetupError(
            f'{path} inherits configs of a toolbox that is not installed ({err}). Install it with '
            f'this package: pip install "mambaout-mm[det]" (mmdet) or "mambaout-mm[seg]" '
            f'(mmsegmentation); see docs/install.md.') from None
    except (SyntaxError, TypeError, KeyError, ValueError, AssertionError) as err:
        # mmengine's parser: Python syntax, a _base_ that does not merge, a bad PACKAGE:: path
        raise RunSetupError(f'{path} cannot be read as a config: {type(err).__name__}: '
                            f'{err}') from None
    imports = cfg.get('custom_imports')
    if imports:
        modules = imports.get('imports', [])
        for module in [modules] if isinstance(modules, str) else modules:  # mmseg's: one string
            package = module.split('.')[0]
            if importlib.util.find_spec(package) is None:
                raise RunSetupError(f'{path} imports {module} (custom_imports), but {package} is not '
                                    f'installed: pip install {package}.')
        import_modules_from_strings(**imports)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('optim_wrapper', {}).get('type') == 'OptimWrapper':
        # `--cfg-options optim_wrapper.type=OptimWrapper` on an AMP config leaves AMP-only keys.
        for key in ('loss_scale', 'dtype'):
            cfg.optim_wrapper.pop(key, None)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    toolbox(cfg)
    return cfg


def toolbox(cfg: Config) -> str:
    """``'mmdet'`` or ``'mmseg'``, from the config's ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in ('mmdet', 'mmseg'):
        raise RunSetupError(f"default_scope must be 'mmdet' or 'mmseg' (inherit mmdet's or mmseg's "
                            f"default_runtime), got {scope!r}.")
    return scope


def toolbox_registry(cfg: Config, name: str) -> Any:
    """The registry ``name`` (``MODELS``, ``DATASETS``, ...) of the config's toolbox, with that
    toolbox made mmengine's default scope."""
    from mmengine.registry import init_default_scope
    scope = toolbox(cfg)
    init_default_scope(scope)
    return getattr(importlib.import_module(f'{scope}.registry'), name)


def build_model(cfg: Config) -> torch.nn.Module:
    """The detector or segmentor ``cfg.model`` describes, built in the config's toolbox scope."""
    return toolbox_registry(cfg, 'MODELS').build(cfg.model)


def select_device(device: str | None) -> None:
    """``--device cpu`` hides the GPUs from this process (before CUDA is initialised); ``cuda``
    or ``None`` leaves them."""
    if device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''


def uses_amp(cfg: Config) -> bool:
    return cfg.optim_wrapper.get('type') in ('AmpOptimWrapper', 'CPUAutocastOptimWrapper')


def add_hook(cfg: Config, hook_type: str) -> None:
    """Add ``dict(type=hook_type)`` to ``cfg.custom_hooks`` unless the config has one."""
    hooks = list(cfg.get('custom_hooks', []))
    if not any(hook.get('type') == hook_type for hook in hooks):
        cfg.custom_hooks = [*hooks, dict(type=hook_type)]


def setup_amp(cfg: Config, requested: bool) -> str | None:
    """Mixed precision for ``--amp`` or a config that asks for it; returns what was chosen.

    With a GPU: FP16 with a dynamic loss scale (mmengine's ``AmpOptimWrapper``, as in the paper).
    Without one: bfloat16 autocast through :class:`mambaout_mm.amp.CPUAutocastOptimWrapper` where
    the CPU computes bfloat16 natively, else float32 (emulated bfloat16 is many times slower than
    float32). A config that names ``CPUAutocastOptimWrapper`` itself gets it on any CPU.
    """
    if not (requested or uses_amp(cfg)):
        return None
    wrapper = cfg.optim_wrapper
    if torch.cuda.is_available():
        if wrapper.get('type') != 'AmpOptimWrapper':
            for key in ('modules', 'dtype'):  # another wrapper's: a bf16 dtype left would stay
                wrapper.pop(key, None)
            wrapper.type = 'AmpOptimWrapper'
            wrapper.setdefault('loss_scale', 'dynamic')
        add_hook(cfg, 'LossScaleHook')  # the scale in the log
        if wrapper.get('dtype') not in (None, 'float16', torch.float16):
            return f'{wrapper.dtype} autocast, as the config says (AmpOptimWrapper)'
        return 'fp16 autocast with a dynamic loss scale (AmpOptimWrapper)'
    from . import cpu_support
    from .amp import AUTOCAST_MODULES
    forced = wrapper.get('type') == 'CPUAutocastOptimWrapper'
    for key in ('loss_scale', 'dtype', 'use_fsdp'):
        wrapper.pop(key, None)
    if not (forced or cpu_support.bf16_native()):
        wrapper.pop('modules', None)
        wrapper.type = 'OptimWrapper'
        return (f'off, training in float32: no GPU, and {cpu_support.why_no_native_bf16()}, so '
                f'bfloat16 would be emulated, many times slower than float32 '
                f'(--cfg-options optim_wrapper.type=CPUAutocastOptimWrapper forces it)')
    wrapper.type = 'CPUAutocastOptimWrapper'
    wrapper.setdefault('modules', list(AUTOCAST_MODULES[toolbox(cfg)]))
    native = '' if cpu_support.bf16_native() else \
        f', emulated: {cpu_support.why_no_native_bf16()}'
    return f'no GPU: bfloat16 autocast of {", ".join(wrapper.modules)} ' \
           f'(CPUAutocastOptimWrapper{native})'


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
