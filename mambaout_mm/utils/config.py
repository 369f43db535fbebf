"""Configs as the tools read them: a file or a packaged one (``mambaout_mm::``, ``mmdet::``,
``mmseg::``), with ``--cfg-options`` applied, and the toolbox (mmdet or mmseg) it belongs to."""
from __future__ import annotations

import importlib
import importlib.util
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
                raise RunSetupError(f'{path} imports {module} (custom_imports), but {package} '
                                    f'is not installed: pip install {package}.')
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


#: The project's one word for each task, by the toolbox that holds it (``default_scope``); the
#: deployed folder's manifest, the report, the cost table and the tools all say these words.
TASKS = {'mmdet': 'detection', 'mmseg': 'segmentation'}


def toolbox(cfg: Config) -> str:
    """``'mmdet'`` or ``'mmseg'``, from the config's ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise RunSetupError(f"default_scope must be 'mmdet' or 'mmseg' (inherit mmdet's or mmseg's "
                            f"default_runtime), got {scope!r}.")
    return scope


def task(cfg: Config) -> str:
    """``'detection'`` or ``'segmentation'``: the task of the config's toolbox."""
    return TASKS[toolbox(cfg)]


def toolbox_registry(cfg: Config, name: str) -> Any:
    """The registry ``name`` (``MODELS``, ``DATASETS``, ...) of the config's toolbox, with that
    toolbox made mmengine's default scope."""
    from mmengine.registry import init_default_scope
    scope = toolbox(cfg)
    init_default_scope(scope)
    return getattr(importlib.import_module(f'{scope}.registry'), name)


def build_model(cfg: Config) -> torch.nn.Module:
    """The detector or segmentor ``cfg.model`` describes, built in the config's toolbox scope,
    once its parts are known to fit (:mod:`mambaout_mm.engine.model_layout`)."""
    from ..engine.model_layout import check_model_layout
    check_model_layout(cfg)
    return toolbox_registry(cfg, 'MODELS').build(cfg.model)


def build_model_with_weights(cfg: Config, checkpoint: str | None) -> torch.nn.Module:
    """The model with ``checkpoint``'s weights (a path or URL, which must fit the model whole:
    :func:`~mambaout_mm.weights.checkpoint.load_model_checkpoint`), or without one the config's
    own initialisation, seeded: the same random weights on every run."""
    torch.manual_seed(0)
    model = build_model(cfg)
    if checkpoint:
        from ..weights.checkpoint import load_model_checkpoint, local_checkpoint
        load_model_checkpoint(model, local_checkpoint(checkpoint, must_exist=True))
    else:
        model.init_weights()
    return model


def add_hook(cfg: Config, hook_type: str) -> None:
    """Add ``dict(type=hook_type)`` to ``cfg.custom_hooks`` unless the config has one."""
    hooks = list(cfg.get('custom_hooks', []))
    if not any(hook.get('type') == hook_type for hook in hooks):
        cfg.custom_hooks = [*hooks, dict(type=hook_type)]
