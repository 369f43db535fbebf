"""Training hooks: the FP16 loss scale in the training log, and a stop when the loss diverges."""
from __future__ import annotations

import math

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..utils.errors import NonFiniteLossError


@HOOKS.register_module()
class LossScaleHook(Hook):
    """Log the dynamic loss scale of an ``AmpOptimWrapper`` after every iteration.

    FP16 training skips the steps whose gradients overflow and halves the scale; a scale that
    keeps falling is the first sign of a run going bad. The scale appears in the training log
    and in ``vis_data/scalars.json`` as ``fp16_scale``, its value after the iteration's update
    (mmengine's log processor would average a key holding "loss" over its window). Other
    optimizer wrappers log nothing.
    """

    priority = 'NORMAL'  # before the LoggerHook (BELOW_NORMAL) writes the iteration's record

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
        if scaler is not None and scaler.is_enabled():
            runner.message_hub.update_scalar('train/fp16_scale', float(scaler.get_scale()))


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training when the loss turns NaN or infinite, instead of training on to the end.

    Without it a run whose loss diverged keeps updating (with plain ``OptimWrapper`` every weight
    is NaN after the first such step) until its schedule ends. With a dynamic FP16 loss scale an
    overflowing step is skipped and the weights stay finite, so ``patience`` consecutive
    non-finite losses are allowed there before the run stops; elsewhere the first one stops it,
    before the iteration's checkpoint is written. The error names the iteration, the loss terms
    that are not finite, and the checkpoint ``--resume`` would continue from.
    """

    priority = 'ABOVE_NORMAL'  # before the CheckpointHook (VERY_LOW) saves this iteration

    def __init__(self, patience: int = 10) -> None:
        self.patience = patience
        self._bad_in_a_row = 0

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        terms = {name: float(value) for name, value in (outputs or {}).items()
                 if 'loss' in name and isinstance(value, (torch.Tensor, float, int))}
        bad = {name: value for name, value in terms.items() if not math.isfinite(value)}
        if not bad:
            self._bad_in_a_row = 0
            return
        self._bad_in_a_row += 1
        scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
        allowed = self.patience if scaler is not None and scaler.is_enabled() else 1
        if self._bad_in_a_row < allowed:
            return
        from mmengine.runner import find_latest_checkpoint
        last = find_latest_checkpoint(runner.work_dir)
        in_a_row = f' ({self._bad_in_a_row} iterations in a row)' if allowed > 1 else ''
        raise NonFiniteLossError(
            f'the loss is not finite at iteration {runner.iter + 1}{in_a_row}: '
            + ', '.join(f'{name}={value}' for name, value in bad.items())
            + '. Training stopped. Usual causes: a learning rate too high for this batch size '
              '(--auto-scale-lr), boxes or masks outside their images, FP16 overflow in a custom '
              'layer. '
            + (f'Continue from {last} with --resume after the fix.' if last else
               'No checkpoint was saved yet.'))
