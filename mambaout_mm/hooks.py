"""Training hooks: the FP16 loss scale in the training log."""
from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


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
