"""Loading mmengine's training checkpoints with torch's safe (``weights_only``) unpickler.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``. mmengine 0.10.7 relies on that
default, and its own checkpoints (``--resume``, ``tools/test.py`` on a training checkpoint) then
fail: their ``message_hub`` holds ``HistoryBuffer`` objects (which pickle their statistics methods
as ``getattr(HistoryBuffer, 'mean')``) and numpy arrays and scalars. Rather than turning safe
loading off (which runs any code a checkpoint carries), this allows exactly those plain-data types,
and in place of ``getattr`` a function that only returns HistoryBuffer's statistics methods. It is
the project's one place for this; importing ``mambaout_mm`` applies it.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

from ..utils.errors import UnsafeCheckpointError

_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')
#: whether this torch can allow mmengine's objects in its safe unpickler (torch >= 2.4)
SAFE_LOADING = hasattr(torch.serialization, 'add_safe_globals')


def history_buffer_method(owner: type, name: str) -> Callable:
    """Stands in for ``getattr`` while unpickling: only ``HistoryBuffer.<statistic>``."""
    if owner is not HistoryBuffer or name not in _HISTORY_BUFFER_METHODS:
        raise UnsafeCheckpointError(
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
    """Let ``torch.load(..., weights_only=True)`` read mmengine checkpoints (idempotent).

    Before torch 2.4 there is no allowlist to extend; those versions' ``torch.load`` (and so
    mmengine's) defaults to ``weights_only=False`` and reads the checkpoints as they are.
    """
    if SAFE_LOADING:
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals())


def load(path: str | Path, map_location: Any = 'cpu') -> Any:
    """``torch.load(path, weights_only=True)`` with the mmengine allowlist; a file holding other
    objects fails with an error that names the file and the object, not torch's generic advice.

    Before torch 2.4 (no allowlist) mmengine's checkpoints cannot load safely; there this reads
    as mmengine itself does on those versions, with ``weights_only=False``.
    """
    if not SAFE_LOADING:
        return torch.load(path, map_location=map_location)
    allow_mmengine_checkpoints()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except torch.serialization.pickle.UnpicklingError as err:
        found = re.search(r'(?:Unsupported global|GLOBAL) ?:? ?(?:GLOBAL )?([\w.]+)', str(err))
        what = f'the object {found.group(1)}' if found else 'objects'
        raise UnsafeCheckpointError(
            f'{path}: holds {what}, which the safe loader (weights_only=True) does not '
            f'accept, so it is not a plain checkpoint of tensors. If you trust the file, load '
            f'it with torch.load(..., weights_only=False) and save its state_dict.') from None
