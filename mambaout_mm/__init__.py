"""MambaOut backbones for mmdetection and mmsegmentation.

Importing the package registers ``MambaOutBackbone`` in mmengine's root ``MODELS`` registry (which
mmdet's and mmseg's configs search), ``CPUAutocastOptimWrapper`` in ``OPTIM_WRAPPERS``,
``MambaOutLearningRateDecay`` in ``OPTIM_WRAPPER_CONSTRUCTORS``, ``LossScaleHook`` and
``NonFiniteLossHook`` in ``HOOKS``, lets mmengine checkpoints load under torch's safe unpickler,
and lets mmengine find the packaged configs as ``mambaout_mm::PATH``. It imports neither mmdet
nor mmseg.
"""
from .engine.amp import CPUAutocastOptimWrapper
from .engine.hooks import LossScaleHook, NonFiniteLossHook
from .engine.optim import MambaOutLearningRateDecay
from .models.backbone import MambaOutBackbone
from .models.mambaout import ARCH_SETTINGS, MambaOut, MambaOutTrunk
from .registry import register_config_package
from .version import __version__
from .weights.checkpoint import CheckpointMismatchError, load_mambaout_weights
from .weights.safe_load import allow_mmengine_checkpoints

allow_mmengine_checkpoints()
register_config_package()

__all__ = ['ARCH_SETTINGS', 'CheckpointMismatchError', 'CPUAutocastOptimWrapper', 'LossScaleHook',
           'MambaOut', 'MambaOutBackbone', 'MambaOutLearningRateDecay', 'MambaOutTrunk',
           'NonFiniteLossHook', 'load_mambaout_weights', '__version__']
