"""Where the project's modules are registered: mmengine's root ``MODELS``.

mmdet's and mmseg's ``MODELS`` registries are children of mmengine's and look a type up in their
ancestors when they do not hold it, so one registration serves configs of both toolboxes, and
importing the package imports neither toolbox (only mmengine is needed to import it).
"""
from __future__ import annotations

from mmengine.registry import MODELS


def register_backbone(cls: type) -> type:
    """Register ``cls`` so that mmdet and mmseg configs can build it by name."""
    return MODELS.register_module(module=cls)
