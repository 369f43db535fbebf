"""The project's errors whose message says what is wrong and how to fix it.

Each is a :class:`UserError`; the tools print one as a single ``error: ...`` line, without a
traceback (:func:`mambaout_mm.utils.cli.run`). Each also derives from the built-in class that
callers of the library would catch (``ValueError``, ``RuntimeError``, ``UnpicklingError``).
"""
from __future__ import annotations

import pickle


class UserError(Exception):
    """A problem with the input (config, file, machine) that its message explains."""


class ConfigError(UserError, ValueError):
    """A model setting that cannot be built: an unknown variant, bad ``out_indices``, ..."""


class RunSetupError(UserError, RuntimeError):
    """A run cannot start: a file is missing or an option does not fit this machine."""


class CheckpointReadError(UserError, RuntimeError):
    """A checkpoint file (or URL) that cannot be read; the message names it and the problem."""


class CheckpointNotFoundError(CheckpointReadError, FileNotFoundError):
    """A local checkpoint file that does not exist."""


class CheckpointMismatchError(UserError, RuntimeError):
    """Weights that do not fit the model they are loaded into."""


class UnsafeCheckpointError(UserError, pickle.UnpicklingError):
    """A checkpoint holding objects that torch's safe loader refuses (code could run)."""


class ImageFileError(UserError, RuntimeError):
    """An image of the dataset cannot be loaded; the message names the file and the problem."""


class NonFiniteLossError(UserError, FloatingPointError):
    """Training stopped because the loss became NaN or infinite."""
