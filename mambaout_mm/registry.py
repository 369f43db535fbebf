"""Registration of the project's modules in the OpenMMLab toolboxes that are installed."""
from __future__ import annotations

import importlib
import importlib.util

TOOLBOXES = ('mmdet', 'mmseg')


def installed_toolboxes() -> list[str]:
    return [name for name in TOOLBOXES if importlib.util.find_spec(name) is not None]


def register_backbone(cls: type) -> type:
    """Register ``cls`` in the ``MODELS`` registry of mmdet and of mmseg, whichever exist."""
    for name in installed_toolboxes():
        importlib.import_module(f'{name}.registry').MODELS.register_module(module=cls)
    return cls
