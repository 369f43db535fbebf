"""The whole-model checkpoint check inside mmengine's Runner, for ``load_from`` and resuming.

mmengine loads a checkpoint into the model non-strictly: one of another model is taken with a
warning, and the run tests or trains randomly initialised heads. ``tools/train.py`` and
``tools/test.py`` add :class:`CheckpointFitHook`, which refuses it before it is loaded
(:func:`mambaout_mm.weights.checkpoint.fit_model_weights`). mmdet's and mmseg's own tools run it
where the config lists ``custom_hooks=[dict(type='CheckpointFitHook')]`` (with
``mambaout_mm.engine.checkpoint_fit`` in ``custom_imports``).
"""
from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.registry import HOOKS

from ..weights.checkpoint import fit_model_weights, model_state_dict


def bare_model(model):
    """The model inside distributed and test-time-augmentation wrappers (whose state_dict names
    the checkpoint's keys, as mmengine's loader unwraps them)."""
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Refuse a checkpoint that does not fit the model, saying what matched and what did not.

    Args:
        partial: a checkpoint given as ``load_from`` (not one resumed) may fit in part: the
            tensors that fit are loaded, the others listed in the log (fine-tuning on other
            classes). A resumed checkpoint always has to fit whole.
    """

    priority = 'VERY_LOW'  # after other hooks' after_load_checkpoint (EMAHook reads it whole)

    def __init__(self, partial: bool = False) -> None:
        self.partial = partial

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        resuming = bool(getattr(runner, '_resume', False))
        source = runner._load_from or 'the latest checkpoint of the work dir'
        what = f'The checkpoint {source}' + (' (resumed)' if resuming else '')
        weights = fit_model_weights(bare_model(runner.model).state_dict(),
                                    model_state_dict(checkpoint), what,
                                    self.partial and not resuming, MMLogger.get_current_instance())
        if 'state_dict' in checkpoint:  # what mmengine then loads: only the tensors that fit
            checkpoint['state_dict'] = weights
        else:
            for key in [k for k in checkpoint if k.removeprefix('module.') not in weights]:
                del checkpoint[key]


def check_checkpoint_loads(cfg, partial: bool = False) -> None:
    """Give the run :class:`CheckpointFitHook` (``partial``: for ``load_from``) and import it
    wherever the config this run dumps is run again."""
    hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') != 'CheckpointFitHook']
    cfg.custom_hooks = [*hooks, dict(type='CheckpointFitHook', partial=partial)]
    imports = cfg.setdefault('custom_imports', dict(imports=[])).setdefault('imports', [])
    if __name__ not in imports:
        imports.append(__name__)
