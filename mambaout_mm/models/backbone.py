"""MambaOut as a dense-prediction backbone for mmdetection and mmsegmentation."""
from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import torch
from mmengine.logging import MMLogger
from mmengine.model import BaseModule

from ..registry import register_backbone
from ..utils.errors import ConfigError
from ..weights.checkpoint import CLASSIFIER_PREFIXES, load_mambaout_weights
from .mambaout import MambaOutTrunk, layer_norm, resolve_arch


@register_backbone
class MambaOutBackbone(MambaOutTrunk, BaseModule):
    """The MambaOut trunk returning multi-scale NCHW features, each through its own LayerNorm.

    The trunk is :class:`MambaOutTrunk`, as in the classifier (same modules, same names: official
    checkpoints load without renaming); stages after the last of ``out_indices`` are not built,
    so every parameter takes part in the loss.

    Args:
        arch: variant name (``'femto'``, ``'kobe'``, ``'tiny'``, ``'small'``, ``'base'``, timm's
            ``'*_rw'``) or a dict of settings (see ``ARCH_SETTINGS``).
        out_indices: stages whose outputs are returned (strides 4, 8, 16, 32 for 0..3).
        drop_path_rate: stochastic depth at the last block, ramped linearly.
        frozen_stages: stages 0..frozen_stages-1 (each with its downsampling layer, the stem for
            stage 0, and its output norm) stop gradients and stay in eval mode; 0 freezes nothing.
        with_cp: activation checkpointing per block (less memory, more compute).
        backend: implementation of the blocks' token mixer and of the stem's and downsampling
            convs: ``'auto'`` (the fastest that runs on the input) or one of
            :data:`mambaout_mm.models.backends.BACKENDS`.
        mixer: the former name of ``backend`` (deprecated; warns).
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH_OR_URL)`` loads official, timm or
            mmengine MambaOut weights from a file or anything mmengine's ``CheckpointLoader``
            reads (see :mod:`mambaout_mm.weights.checkpoint`); otherwise random init.
    """

    def __init__(self, arch: str | Mapping[str, Any] = 'tiny', in_chans: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3), drop_path_rate: float = 0.,
                 frozen_stages: int = 0, with_cp: bool = False, backend: str = 'auto',
                 init_cfg: dict | list[dict] | None = None, mixer: str | None = None) -> None:
        if mixer is not None:
            if backend not in ('auto', mixer):
                raise ConfigError(f'backend={backend!r} and mixer={mixer!r} disagree; mixer is '
                                  'the former name of backend: give backend only.')
            warnings.warn("MambaOutBackbone's mixer= is now backend= (it picks the convs' "
                          'implementation too); mixer= will be removed.', DeprecationWarning,
                          stacklevel=2)
            backend = mixer
        depths = resolve_arch(arch)['depths']
        out_indices = self._check_out_indices(out_indices, len(depths))
        if not -1 <= frozen_stages <= len(depths):
            raise ConfigError(f'frozen_stages must be in [-1, {len(depths)}] '
                             f'(0 or -1: none frozen), got {frozen_stages}.')
        # No stage after the last output (its parameters would get no gradient under DDP).
        super().__init__(arch=arch, in_chans=in_chans, drop_path_rate=drop_path_rate,
                         num_stages=out_indices[-1] + 1, backend=backend, init_cfg=init_cfg)
        self.out_indices = out_indices
        self.frozen_stages = max(frozen_stages, 0)
        self.grad_checkpointing = with_cp
        for i in self.out_indices:
            self.add_module(f'norm{i}', layer_norm(self.dims[i]))
        self._freeze_stages()

    @staticmethod
    def _check_out_indices(out_indices: Sequence[int] | int, num_stages: int) -> tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = (out_indices,)
        normalized = []
        for i in out_indices:
            if not isinstance(i, int) or not -num_stages <= i < num_stages:
                raise ConfigError(f'out_indices entries must be stage indices in '
                                 f'[{-num_stages}, {num_stages - 1}], got {tuple(out_indices)}.')
            normalized.append(i % num_stages)
        if not normalized or len(set(normalized)) != len(normalized):
            raise ConfigError(f'out_indices must be non-empty and without repeats, '
                             f'got {tuple(out_indices)}.')
        return tuple(sorted(normalized))

    def _freeze_stages(self) -> None:
        for i in range(min(self.frozen_stages, self.num_stages)):
            modules = [self.downsample_layers[i], self.stages[i]]
            if i in self.out_indices:
                modules.append(getattr(self, f'norm{i}'))
            for module in modules:
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> MambaOutBackbone:
        super().train(mode)
        self._freeze_stages()
        return self

    def init_weights(self) -> None:
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            unknown = set(cfg) - {'type', 'checkpoint', 'map_location', 'prefix'}
            if unknown or cfg.get('prefix', 'backbone.') != 'backbone.':
                raise ConfigError(f'MambaOutBackbone Pretrained init_cfg takes checkpoint (and '
                                 f"map_location, prefix='backbone.'), got {cfg}.")
            pruned = tuple(f'{name}.{i}.' for name in ('downsample_layers', 'stages')
                           for i in range(self.num_stages, len(self.depths)))
            load_mambaout_weights(self, cfg['checkpoint'], logger=MMLogger.get_current_instance(),
                                  ignore_prefixes=CLASSIFIER_PREFIXES + pruned,
                                  map_location=cfg.get('map_location', 'cpu'))
            self._is_init = True
        else:
            super().init_weights()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = []
        for i in range(self.num_stages):
            x = self.forward_stage(i, x)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x)
                outs.append(out.permute(0, 3, 1, 2).contiguous())
        return tuple(outs)
