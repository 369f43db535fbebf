"""Where the project's modules are registered: mmengine's root ``MODELS``, and its configs for
mmengine's ``mambaout_mm::PATH`` notation.

mmdet's and mmseg's ``MODELS`` registries are children of mmengine's and look a type up in their
ancestors when they do not hold it, so one registration serves configs of both toolboxes, and
importing the package imports neither toolbox (only mmengine is needed to import it).
"""
from __future__ import annotations

from mmengine.registry import MODELS


def register_backbone(cls: type) -> type:
    """Register ``cls`` so that mmdet and mmseg configs can build it by name."""
    return MODELS.register_module(module=cls)


def register_config_package() -> None:
    """Let mmengine resolve ``mambaout_mm::mask_rcnn/...`` (``Config.fromfile``, ``_base_``) in the
    installed package's ``.mim/configs``, as it resolves ``mmdet::``; mmengine 0.10 knows only the
    OpenMMLab packages by name (``MODULE2PACKAGE``)."""
    from mmengine.config.utils import MODULE2PACKAGE
    MODULE2PACKAGE.setdefault('mambaout_mm', 'mambaout-mm')
