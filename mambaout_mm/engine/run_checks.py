"""Checks made before ``tools/train.py`` or ``tools/test.py`` starts mmengine's Runner.

Each check raises :class:`~mambaout_mm.utils.errors.RunSetupError` (or another
:class:`~mambaout_mm.utils.errors.UserError`) naming the problem and its fix; :class:`Problems` runs
them all and reports every problem found in one message, so that a run which cannot start says
everything at once (no GPU, weights missing, data missing) instead of one problem a try.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import os
import os.path as osp
import re
from typing import Any, Iterator

import torch
from mmengine.config import Config
from packaging.requirements import Requirement

from ..utils.errors import (
    CheckpointNotFoundError,
    CheckpointReadError,
    ConfigError,
    RunSetupError,
    UserError,
)
from ..weights import checkpoint
from .model_layout import check_model_layout

#: How to get mmcv with its compiled ops, named wherever they are missing.
MMCV_OPS_HELP = ('Install mmcv 2.1.0 with its ops: `mim install "mmcv==2.1.0"` where OpenMMLab '
                 'publishes a wheel for your torch and CUDA, or build one for this environment '
                 'with `VENV=$VIRTUAL_ENV TORCH=installed bash tools/setup_env.sh` '
                 '(see docs/install.md).')


class Problems:
    """Collects the problems of several checks; :meth:`raise_all` reports them together."""

    def __init__(self) -> None:
        self.found: list[str] = []

    @contextlib.contextmanager
    def check(self) -> Iterator[None]:
        """Run the block; a :class:`UserError` it raises is recorded and the next check runs."""
        try:
            yield
        except UserError as err:  # the problems of a nested raise_all count one by one
            self.found.extend(getattr(err, 'problems', None) or [str(err)])

    def raise_all(self) -> None:
        if not self.found:
            return
        if len(self.found) == 1:
            err = RunSetupError(self.found[0])
        else:
            listed = '\n'.join(f'  {i}. {problem}' for i, problem in enumerate(self.found, 1))
            err = RunSetupError(f'{len(self.found)} problems stop this run:\n{listed}')
        err.problems = list(self.found)
        raise err


def mmcv_requirement() -> Requirement:
    """The mmcv versions this package supports, as its metadata states them (the ``mim``
    extra of ``pyproject.toml``, the one place they are written)."""
    for line in importlib.metadata.requires('mambaout-mm') or []:
        requirement = Requirement(line)
        if requirement.name == 'mmcv':
            return requirement
    raise RunSetupError('The installed mambaout-mm metadata names no mmcv requirement; '
                        'reinstall the package (pip install -e .).')


def check_mmcv_ops() -> None:
    """mmcv is installed with its compiled ops (mmdet's and mmseg's models need them)."""
    try:
        import mmcv
    except ImportError:
        raise RunSetupError(f'mmcv is not installed. {MMCV_OPS_HELP}') from None
    from packaging.version import Version
    supported = mmcv_requirement()
    if Version(mmcv.__version__) not in supported.specifier:
        raise RunSetupError(f'mmcv {mmcv.__version__} is installed, but this package supports '
                            f'mmcv{supported.specifier} (mmdet 3.3 and mmseg 1.2 accept no newer). '
                            f'{MMCV_OPS_HELP}')
    try:
        import mmcv._ext  # noqa: F401  (what mmcv.ops loads)
    except ImportError as err:
        raise RunSetupError(f'mmcv {mmcv.__version__} is installed without its compiled ops '
                            f'({err}). {MMCV_OPS_HELP}') from None


def check_backbone(cfg: Config) -> None:
    """The config's MambaOut backbone settings can be built (variant, ``out_indices``, ...): the
    backbone is built once, without its weights (a second or less for the Base model); then its
    maps and what reads them fit together (:func:`~mambaout_mm.engine.model_layout.
    check_model_layout`)."""
    from mmengine.registry import MODELS
    backbone = cfg.model.get('backbone')
    if backbone and backbone.get('type') == 'MambaOutBackbone':
        settings = {key: value for key, value in backbone.items() if key != '_scope_'}
        try:
            MODELS.build(settings)
        except (TypeError, ConfigError) as err:  # TypeError: an argument it does not take
            raise ConfigError(f'model.backbone: {err}') from None
    check_model_layout(cfg)


#: The checkpoints mmengine's CheckpointHook writes, by the epoch or iteration they end.
CHECKPOINT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def previous_checkpoint(path: str) -> str | None:
    """The readable checkpoint saved before ``path`` in its folder (the highest epoch or
    iteration below it), if there is one."""
    folder, name = osp.split(path)
    mine = CHECKPOINT_NAME.match(name)
    candidates = []
    for entry in os.listdir(folder or '.'):
        match = CHECKPOINT_NAME.match(entry)
        if match and entry != name and (not mine or (match[1] == mine[1]
                                                     and int(match[2]) < int(mine[2]))):
            candidates.append((int(match[2]), osp.join(folder, entry)))
    for _, candidate in sorted(candidates, reverse=True):
        try:
            checkpoint.check_checkpoint_file(candidate)
        except CheckpointReadError:
            continue
        return candidate
    return None


def check_resume(cfg: Config) -> str | None:
    """The checkpoint a resumed run starts from (``load_from``, or without it the work dir's
    latest), checked as a file; ``None`` where there is none (mmengine then starts afresh). A
    damaged one (cut short by a kill while it was written, ...) is named with the way out: the
    checkpoint before it."""
    from mmengine.runner import find_latest_checkpoint
    path = cfg.get('load_from') or find_latest_checkpoint(cfg.work_dir)
    if not path:
        return None
    try:
        return checkpoint.local_checkpoint(path, must_exist=True)
    except CheckpointReadError:
        local = str(path).removeprefix('file://')
        if '://' in local:
            raise
        folder = osp.dirname(local) or '.'
        previous = previous_checkpoint(local) if osp.isdir(folder) else None
        way_out = (f'To go on, resume from the checkpoint before it: --resume {previous}.'
                   if previous else f'No readable checkpoint is saved before it in {folder}: '
                   f'train from the start (without --resume), or give one with --resume CKPT.')
        if not osp.isfile(local):
            raise CheckpointNotFoundError(f'The checkpoint to resume from is not there: {local}. '
                                          f'{way_out}') from None
        checkpoint.check_checkpoint_file(local, remedy=way_out)
        raise


def check_device(cfg: Config, device: str | None, launcher: str) -> None:
    """Stop a run that asks for GPUs where torch sees none, instead of training on CPUs.

    A run asks for GPUs with ``--device cuda``, or with a GPU config (FP16 ``AmpOptimWrapper``, as
    the Table 2/3 configs) unless ``--device cpu`` says that CPUs are meant.
    """
    gpu_config = cfg.optim_wrapper.get('type') == 'AmpOptimWrapper'
    if device == 'cpu' or torch.cuda.is_available() or not (device == 'cuda' or gpu_config):
        return
    launched = f' under --launcher {launcher}' if launcher != 'none' else ''
    why = '--device cuda' if device == 'cuda' else \
        f'the config trains with FP16 AmpOptimWrapper{launched}'
    if torch.version.cuda is None:
        cause = (f'torch {torch.__version__} is a CPU-only build: install a CUDA build '
                 f'(TORCH_INDEX_URL, see docs/install.md)')
    else:
        visible = os.environ.get('CUDA_VISIBLE_DEVICES')
        cause = (f'torch {torch.__version__} is built for CUDA {torch.version.cuda} and sees no '
                 f'GPU. Likely causes: the NVIDIA driver is older than CUDA {torch.version.cuda} '
                 f'needs (`nvidia-smi` shows the newest CUDA the driver supports; install the '
                 f'torch build for it, see docs/install.md), or no GPU is visible'
                 + (f' (CUDA_VISIBLE_DEVICES={visible!r})' if visible is not None else
                    ' (run on a GPU node; check `nvidia-smi`)'))
    raise RunSetupError(f'This run asks for GPUs ({why}), but {cause}. To run on CPUs on purpose, '
                        f'add --device cpu.')


def _init_cfg_owners(node: Any) -> Iterator[dict]:
    """Every config dict under ``node`` that has an ``init_cfg``, depth first."""
    if isinstance(node, dict):
        if node.get('init_cfg') is not None:
            yield node
        for key, value in node.items():
            if key != 'init_cfg':
                yield from _init_cfg_owners(value)
    elif isinstance(node, list):
        for value in node:
            yield from _init_cfg_owners(value)


def _init_cfgs(owner: dict) -> list:
    init_cfg = owner['init_cfg']
    return init_cfg if isinstance(init_cfg, list) else [init_cfg]


def _pretrained(init_cfg: Any) -> str | None:
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        return init_cfg.get('checkpoint') or None
    return None


def _unavailable(init_cfg: Any) -> bool:
    """A ``Pretrained`` checkpoint that is neither a local file nor a downloaded URL."""
    source = _pretrained(init_cfg)
    if source is None:
        return False
    if source.startswith(('http://', 'https://')):
        return not osp.isfile(checkpoint.download_path(source))
    return '://' not in source and not osp.isfile(source.removeprefix('file://'))


def check_pretrained_weights(cfg: Config) -> None:
    """Every ``Pretrained`` checkpoint the model names is here: a local file that reads as a
    checkpoint, or a URL, downloaded now into torch's hub cache (as mmengine does) so that an
    offline machine learns it before the run."""
    problems = Problems()
    for owner in _init_cfg_owners(cfg.model):
        for source in filter(None, map(_pretrained, _init_cfgs(owner))):
            with problems.check():
                if '://' not in source and not osp.isfile(source):
                    raise RunSetupError(
                        f'Pretrained weights not found: {source}. Give the file\'s path or its '
                        f'URL with --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL '
                        f'(the official ImageNet weights: {checkpoint.OFFICIAL_RELEASE}/'
                        f'{osp.basename(source)}); model.backbone.init_cfg=None trains from '
                        f'scratch.')
                checkpoint.local_checkpoint(source)  # a URL is downloaded, a file checked
    problems.raise_all()


def check_mmcv_and_datasets(problems: Problems, cfg: Config, phases: tuple[str, ...]) -> None:
    """mmcv's ops, then, where they are there (mmdet's and mmseg's datasets import mmcv), the
    datasets of ``phases``, with the image loader that names an unreadable file in place."""
    found = len(problems.found)
    with problems.check():
        check_mmcv_ops()
    if len(problems.found) == found:
        from ..datasets.data_check import check_datasets, name_unreadable_images
        name_unreadable_images(cfg)
        with problems.check():
            check_datasets(cfg, phases)


def drop_unavailable_pretrained(model: Any) -> list[str]:
    """Remove ``Pretrained`` init_cfgs whose file is missing or URL not downloaded; returns them.

    For runs that start from a checkpoint of their own (``--resume``, ``load_from``): its weights
    replace the ImageNet ones, so a machine without those files (or offline) can still continue.
    """
    dropped = []
    for owner in list(_init_cfg_owners(model)):
        init_cfgs = _init_cfgs(owner)
        missing = [c for c in init_cfgs if _unavailable(c)]
        if missing:
            dropped += [c['checkpoint'] for c in missing]
            owner['init_cfg'] = [c for c in init_cfgs if c not in missing] or None
    return dropped
