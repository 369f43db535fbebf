"""Mixed precision: the policy ``--amp`` follows (:func:`setup_amp`: FP16 with a loss scale on a
GPU, bfloat16 on a CPU that computes it natively, else float32), and bfloat16 autocast on the CPU
through an mmengine optimizer wrapper.

mmengine's ``AmpOptimWrapper`` (FP16 with a loss scale) needs a GPU. On a CPU, bfloat16 needs no
loss scale, but mmcv's CPU ops (RoIAlign, NMS) take float32 only, so autocast covers the named
submodules alone (backbone and neck for detectors; backbone and heads for segmentors), whose
outputs are cast back to float32 for the rest of the model. ``--amp`` chooses this wrapper only
where the CPU computes bfloat16 natively (:mod:`mambaout_mm.utils.cpu_support`); built elsewhere, it
warns once that bfloat16 is emulated there.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator, Sequence

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn

from ..utils import cpu_support
from ..utils.config import add_hook, toolbox
from ..utils.errors import RunSetupError
from .nested import map_floats

#: Submodules that run in bfloat16 under ``CPUAutocastOptimWrapper``, per toolbox.
AUTOCAST_MODULES = {
    'mmdet': ('backbone', 'neck'),
    'mmseg': ('backbone', 'decode_head', 'auxiliary_head'),
}


@contextlib.contextmanager
def autocast_submodules(model: nn.Module, names: Sequence[str] | None,
                        dtype: torch.dtype = torch.bfloat16) -> Iterator[None]:
    """Run ``model`` (``names=None``) or its named children under CPU autocast; the children's
    outputs come back as float32."""
    model = getattr(model, 'module', model)  # DDP
    if names is None:
        with torch.autocast('cpu', dtype=dtype):
            yield
        return
    patched = []
    for name in names:
        module = getattr(model, name, None)
        if module is None:
            continue
        forward = module.forward

        def autocast_forward(*args, _forward=forward, **kwargs):
            with torch.autocast('cpu', dtype=dtype):
                return map_floats(_forward(*args, **kwargs), torch.Tensor.float)
        module.forward = autocast_forward
        patched.append(module)
    if not patched:
        raise ValueError(f'None of the autocast modules {tuple(names)} is in '
                         f'{type(model).__name__}.')
    try:
        yield
    finally:
        for module in patched:
            del module.forward  # back to the class's forward


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """An ``OptimWrapper`` whose forward runs in bfloat16 autocast on the CPU.

    Args:
        modules: names of the submodules to autocast (``None``: the whole model).
        dtype: autocast dtype, ``'bfloat16'`` (float16 on a CPU is slow and needs a loss scale).
    """

    def __init__(self, *args, modules: Sequence[str] | None = None, dtype: str = 'bfloat16',
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if dtype != 'bfloat16':
            raise ValueError(f"CPUAutocastOptimWrapper supports dtype='bfloat16', got {dtype!r}.")
        self.modules = tuple(modules) if modules is not None else None
        self.cast_dtype = torch.bfloat16
        if not cpu_support.bf16_native():
            print_log(f'CPUAutocastOptimWrapper: {cpu_support.why_no_native_bf16()}; bfloat16 '
                      'autocast is emulated here and runs many times slower than float32.',
                      logger='current', level=logging.WARNING)

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        with super().optim_context(model), \
                autocast_submodules(model, self.modules, self.cast_dtype):
            yield


def uses_amp(cfg: Config) -> bool:
    return cfg.optim_wrapper.get('type') in ('AmpOptimWrapper', 'CPUAutocastOptimWrapper')


def setup_amp(cfg: Config, requested: bool) -> str | None:
    """Mixed precision for ``--amp`` or a config that asks for it; returns what was chosen.

    With a GPU: FP16 with a dynamic loss scale (mmengine's ``AmpOptimWrapper``, as in the paper),
    unless the config's ``fp16_refused`` says why it cannot train so (an error; a config that
    names ``AmpOptimWrapper`` itself is taken at its word).
    Without one: bfloat16 autocast through :class:`mambaout_mm.engine.amp.CPUAutocastOptimWrapper`
    where the CPU computes bfloat16 natively, else float32 (emulated bfloat16 is many times slower
    than float32). A config that names ``CPUAutocastOptimWrapper`` itself gets it on any CPU.
    """
    if not (requested or uses_amp(cfg)):
        return None
    wrapper = cfg.optim_wrapper
    if torch.cuda.is_available():
        refused = cfg.get('fp16_refused')
        if refused and wrapper.get('type') != 'AmpOptimWrapper':
            raise RunSetupError(f'--amp: this config trains in float32 because {refused} Train '
                                f'without --amp, or force FP16 autocast with --cfg-options '
                                f'optim_wrapper.type=AmpOptimWrapper.')
        if wrapper.get('type') != 'AmpOptimWrapper':
            for key in ('modules', 'dtype'):  # another wrapper's: a bf16 dtype left would stay
                wrapper.pop(key, None)
            wrapper.type = 'AmpOptimWrapper'
            wrapper.setdefault('loss_scale', 'dynamic')
        add_hook(cfg, 'LossScaleHook')  # the scale in the log
        if wrapper.get('dtype') not in (None, 'float16', torch.float16):
            return f'{wrapper.dtype} autocast, as the config says (AmpOptimWrapper)'
        return 'fp16 autocast with a dynamic loss scale (AmpOptimWrapper)'
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
