"""Loading mmengine's training checkpoints with torch's safe (``weights_only``) unpickler.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``. mmengine 0.10.7 relies on that
default, and its own checkpoints (``--resume``, ``tools/test.py`` on a training checkpoint) then fail:
their ``message_hub`` holds ``HistoryBuffer`` objects (which pickle their statistics methods as
``getattr(HistoryBuffer, 'mean')``) and numpy arrays and scalars. Rather than turning safe loading
off (which runs any code a checkpoint carries), this allows exactly those plain-data types, and in
place of ``getattr`` a function that only returns HistoryBuffer's statistics methods. It is the
project's one place for this; importing ``mambaout_mm`` applies it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def history_buffer_method(owner: type, name: str) -> Callable:
    """Stands in for ``getattr`` while unpickling: only ``HistoryBuffer.<statistic>``."""
    if owner is not HistoryBuffer or name not in _HISTORY_BUFFER_METHODS:
        raise torch.serialization.pickle.UnpicklingError(
            f'Refusing getattr({owner!r}, {name!r}) in a checkpoint: only HistoryBuffer '
            f'statistics methods {_HISTORY_BUFFER_METHODS} are allowed.')
    return getattr(HistoryBuffer, name)


def mmengine_checkpoint_globals() -> list:
    """The non-tensor globals found in checkpoints that mmengine's Runner saves."""
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    dtype_classes = [getattr(np.dtypes, name) for name in np.dtypes.__all__
                     if isinstance(getattr(np.dtypes, name), type)]
    return [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
            *dtype_classes,
            (history_buffer_method, 'builtins.getattr'),
            (history_buffer_method, '__builtin__.getattr')]


def allow_mmengine_checkpoints() -> None:
    """Let ``torch.load(..., weights_only=True)`` read mmengine checkpoints (idempotent)."""
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
