"""Whether the parts of a detector's or segmentor's config fit together, read from the built
config before mmdet or mmseg builds anything.

The backbone's feature maps (how many: ``out_indices``; their channels: ``MambaOutBackbone``'s
``dims`` per ``arch``) are set against what reads them: the first neck, or, in a model without
one, its heads (``*_head`` with ``in_channels``). A reader takes ``in_channels`` (one per map, or
per ``in_index`` where it has one, as mmseg's heads), and FPN-like necks read the maps from
``start_level`` to ``end_level``; the defaults come from the reader's class, so every neck and
head that names its inputs this way is checked (FPN, ChannelMapper, UPerHead, Mask2Former's head
and pixel decoder, ...). A map that nothing reads is refused too: its output norm gets no
gradient, which stops distributed training (mmdet PR #6621).

The tools run it before a run and where they build a model (``tools/train.py``, ``tools/test.py``
through :func:`mambaout_mm.engine.run_checks.check_backbone`; the others through
:func:`mambaout_mm.utils.config.build_model`). mmdet's and mmseg's own tools do not: the
backbone, which is all of this package they build, cannot see the neck.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from mmengine.config import Config

from ..models.backbone import MambaOutBackbone
from ..models.mambaout import resolve_arch
from ..utils.errors import ConfigError


@dataclass
class Maps:
    """The maps a backbone gives: how many, their channels where known, and the settings that
    say so (for messages)."""
    out_indices: tuple[int, ...]
    channels: list[int] | None
    settings: str
    #: each map has parameters of its own (MambaOut's output norms): one no module reads breaks
    #: distributed training; other backbones' unread maps are left alone (ResNet's cost nothing)
    own_parameters: bool = False


@dataclass
class Reader:
    """A module reading the backbone's maps: the map indices it reads, the channels it expects of
    each, and how many maps it takes in all (``None``: any number)."""
    name: str
    type: str
    reads: list[int]
    channels: list[int]
    takes: int | None
    settings: dict


def _default(cls: type | None, name: str) -> Any:
    """The default of the ``__init__`` argument ``name`` of ``cls`` or the first base having it."""
    for klass in getattr(cls, '__mro__', ()):
        try:
            parameter = inspect.signature(klass.__init__).parameters.get(name)
        except (TypeError, ValueError):  # a built-in __init__ without a signature
            continue
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            return parameter.default
    return None


def _model_class(cfg: Config, type_name: Any) -> type | None:
    """The class a module's ``type`` names in the config's toolbox, if it can be imported here."""
    if not isinstance(type_name, str):
        return type_name if isinstance(type_name, type) else None
    from ..utils.config import toolbox_registry
    try:
        return toolbox_registry(cfg, 'MODELS').get(type_name)
    except (ImportError, KeyError):  # the toolbox or mmcv's ops missing: config values only
        return None


def backbone_maps(backbone: dict) -> Maps | None:
    """The maps of ``model.backbone``; ``None`` where its ``out_indices`` are not known."""
    if backbone.get('type') == 'MambaOutBackbone':
        arch = backbone.get('arch', _default(MambaOutBackbone, 'arch'))
        dims = resolve_arch(arch)['dims']
        indices = MambaOutBackbone._check_out_indices(
            backbone.get('out_indices', _default(MambaOutBackbone, 'out_indices')), len(dims))
        channels = [dims[i] for i in indices]
        name = f'MambaOut-{arch}' if isinstance(arch, str) else 'MambaOut'
        return Maps(indices, channels, f'model.backbone.out_indices={indices} ({name}: maps of '
                                       f'{channels} channels)', own_parameters=True)
    indices = backbone.get('out_indices')
    if not isinstance(indices, (list, tuple)):
        return None
    indices = tuple(indices)
    return Maps(indices, None, f'model.backbone.out_indices={indices} ({len(indices)} maps)')


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def reader(cfg: Config, name: str, module: dict) -> Reader | None:
    """What ``module`` reads of the backbone's maps; ``None`` where that cannot be told from its
    settings (no ``in_channels``, or one map without an ``in_index``)."""
    in_channels = module.get('in_channels')
    if in_channels is None:
        return None
    cls = _model_class(cfg, module.get('type'))

    def setting(key: str) -> Any:
        return module[key] if key in module else _default(cls, key)

    in_index = setting('in_index')
    if in_index is not None:  # mmseg's heads: the maps in_index names, in_channels for each
        reads = _as_list(in_index)
        channels = _as_list(in_channels)
        if len(channels) != len(reads):
            raise ConfigError(f'{name}.in_channels={in_channels} and {name}.in_index={in_index} '
                              f'differ in length: give one channel count per index.')
        return Reader(name, str(module.get('type')), reads, channels, None,
                      dict(in_channels=in_channels, in_index=in_index))
    if not isinstance(in_channels, (list, tuple)):
        return None
    channels = list(in_channels)
    start, end = setting('start_level'), setting('end_level')
    settings = {'in_channels': channels}
    if start is None:  # ChannelMapper, Mask2Former's head and pixel decoder, ...: every map
        reads = list(range(len(channels)))
    else:  # FPN-like: from start_level to end_level (inclusive; -1: the last)
        end = len(channels) - 1 if end in (None, -1) else end
        reads = list(range(start, end + 1))
        settings.update(start_level=start, end_level=setting('end_level'))
    return Reader(name, str(module.get('type')), reads, channels, len(channels), settings)


def readers(model: dict) -> list[tuple[str, dict]]:
    """The modules reading the backbone's maps, with their config keys: the first neck, or the
    heads with ``in_channels`` of a model without one."""
    neck = model.get('neck')
    if neck:
        if isinstance(neck, (list, tuple)):
            return [('model.neck[0]', neck[0])]
        return [('model.neck', neck)]
    found = []
    for key, value in model.items():
        if key.endswith('_head') and value:
            modules = _as_list(value)
            found += [(f'model.{key}' + (f'[{i}]' if len(modules) > 1 else ''), m)
                      for i, m in enumerate(modules)
                      if isinstance(m, dict) and 'in_channels' in m]  # not a fusion head
    return found


def _settings(r: Reader) -> str:
    return ', '.join(f'{r.name}.{k}={v}' for k, v in r.settings.items())


def _mismatches(maps: Maps, r: Reader) -> list[str]:
    count = len(maps.out_indices)
    problems = []
    if r.takes is not None and r.takes != count:
        fix = (f'{r.name}.in_channels={maps.channels}' if maps.channels else
               f'{count} entries in {r.name}.in_channels')
        problems.append(f'{maps.settings} gives {count} maps, but {r.name} ({r.type}) takes '
                        f'{r.takes} ({_settings(r)}): set {fix}, or out_indices to the {r.takes} '
                        f'stages it was written for.')
        return problems
    outside = [i for i in r.reads if not -count <= i < count]
    if outside:
        return [f'{r.name} ({r.type}) reads map(s) {outside} ({_settings(r)}), but {maps.settings} '
                f'gives {count} maps (0 to {count - 1}): set {r.name}.in_index within them, or '
                f'add the stages to out_indices.']
    if maps.channels is None:
        return problems
    expected = [r.channels[k] if r.takes is None else r.channels[i % count]
                for k, i in enumerate(r.reads)]
    actual = [maps.channels[i] for i in r.reads]
    if expected != actual:
        if r.takes is None:
            fixed = actual if isinstance(r.settings['in_channels'], (list, tuple)) else actual[0]
        else:
            fixed = list(r.channels)
            for i, c in zip(r.reads, actual):
                fixed[i % count] = c
        problems.append(f'{r.name} ({r.type}) expects maps of {expected} channels '
                        f'({_settings(r)}), but {maps.settings}: set {r.name}.in_channels='
                        f'{fixed}, or the backbone\'s arch to the one it was written for.')
    return problems


def _unused(maps: Maps, found: list[Reader]) -> str | None:
    count = len(maps.out_indices)
    used = {i % count for r in found for i in r.reads}
    unused = [i for i in range(count) if i not in used]
    if not unused:
        return None
    stages = tuple(maps.out_indices[i] for i in unused)
    kept = tuple(s for s in maps.out_indices if s not in stages)
    names = ', '.join(_settings(r) for r in found)
    why = (f'{maps.settings} gives map(s) {unused} (stage(s) {stages}) that no module reads '
           f'({names}); their output norms would get no gradient, which stops distributed '
           f'training (mmdet PR #6621): ')
    r = found[0]
    if len(found) == 1 and 'start_level' in r.settings:
        channels = [r.channels[i] for i in range(count) if i not in unused]
        return why + (f'set model.backbone.out_indices={kept} with {r.name}.in_channels='
                      f'{channels}, start_level=0 and end_level=-1 (the neck\'s outputs stay the '
                      f'same), or {r.name}.start_level=0 and end_level=-1 to read them all.')
    return why + (f'set model.backbone.out_indices={kept} (and renumber in_index), or read '
                  f'every map.')


def check_model_layout(cfg: Config) -> None:
    """Raise :class:`~mambaout_mm.utils.errors.ConfigError` naming the settings that disagree and
    what to set, where the backbone's maps and what reads them do not fit."""
    model = cfg.get('model') or {}
    if 'backbone' not in model and isinstance(model.get('module'), dict):
        model = model['module']  # a test-time augmentation wrapper
    backbone = model.get('backbone')
    maps = backbone_maps(backbone) if isinstance(backbone, dict) else None
    if maps is None:
        return
    found = [reader(cfg, name, module) for name, module in readers(model)]
    if not found:
        return
    problems = [p for r in found if r is not None for p in _mismatches(maps, r)]
    if not problems and maps.own_parameters and all(r is not None for r in found):
        unused = _unused(maps, found)
        problems += [unused] if unused else []
    if problems:
        raise ConfigError(' '.join(problems))
