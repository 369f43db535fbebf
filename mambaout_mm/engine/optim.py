"""Layer-wise and stage-wise learning-rate decay for MambaOut backbones.

mmdet's and mmseg's ``LearningRateDecayOptimizerConstructor`` take the same options but accept only
backbones whose class name contains ``ConvNeXt``. MambaOut has ConvNeXt's layout (a stem, four
stages of blocks under ``backbone.stages.S.B``, downsampling under
``backbone.downsample_layers.S``), so the layer ids follow ConvNeXt's rule: the stem 0, stage 0
layer 1, stage 1 layer 2, stage 2 in groups of three blocks from layer 3, stage 3 the last layer;
``num_layers`` is 3 + ceil(depth of stage 2 / 3): 6 for tiny, 12 for small and base. Use it as::

    optim_wrapper = dict(constructor='MambaOutLearningRateDecay',
                         paramwise_cfg=dict(decay_rate=0.9, decay_type='layer_wise', num_layers=6))

``custom_keys`` (mmengine's: the longest key contained in a parameter's name gives its ``lr_mult``
and ``decay_mult``) multiply on top, so a DETR recipe's ``{'backbone': dict(lr_mult=0.1)}`` keeps
the backbone at a tenth of the decayed lr unless set to 1.
"""
from __future__ import annotations

from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn


def layer_id(name: str, num_layers: int) -> int:
    """ConvNeXt's layer-wise id of parameter ``name``; anything outside the stem and the stages
    is ``num_layers + 1`` (full learning rate)."""
    parts = name.split('.')
    if name.startswith('backbone.downsample_layers.'):
        return (0, 2, 3, num_layers)[int(parts[2])]
    if name.startswith('backbone.stages.'):
        stage, block = int(parts[2]), int(parts[3])
        return (1, 2, 3 + block // 3, num_layers)[stage]
    return num_layers + 1  # also the output norms, as for ConvNeXt


def stage_id(name: str, num_layers: int) -> int:
    """ConvNeXt's stage-wise id: the stem 0, stage S S + 1, everything else the last id."""
    if name.startswith('backbone.downsample_layers.'):
        return 0
    if name.startswith('backbone.stages.'):
        return int(name.split('.')[2]) + 1
    return num_layers + 1


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MambaOutLearningRateDecay(DefaultOptimWrapperConstructor):
    """``paramwise_cfg``: ``decay_rate``, ``decay_type`` (``layer_wise`` or ``stage_wise``) and
    ``num_layers``, as for mmdet's/mmseg's ``LearningRateDecayOptimizerConstructor``. A group's
    lr is ``lr * decay_rate ** (num_layers + 1 - id)``, times its ``custom_keys`` ``lr_mult``;
    norms and biases get no weight decay, the rest ``decay_mult`` times the optimizer's."""

    def add_params(self, params: list[dict], module: nn.Module, **kwargs) -> None:
        cfg = self.paramwise_cfg
        num_layers, rate = cfg['num_layers'], cfg['decay_rate']
        decay_type = cfg.get('decay_type', 'layer_wise')
        if decay_type not in ('layer_wise', 'stage_wise'):
            raise ValueError(f"decay_type must be 'layer_wise' or 'stage_wise', got {decay_type!r}")
        if decay_type == 'layer_wise':
            depth = len(module.backbone.stages[2])
            needed = 3 + (depth + 2) // 3
            if num_layers != needed:
                raise ValueError(f'num_layers must be {needed} for a backbone with {depth} blocks '
                                 f'in stage 2 (3 + ceil({depth} / 3)), got {num_layers}.')
        assign = layer_id if decay_type == 'layer_wise' else stage_id
        custom = cfg.get('custom_keys', {})
        custom_keys = sorted(sorted(custom), key=len, reverse=True)  # mmengine's order
        groups: dict[str, dict] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            no_decay = param.ndim == 1 or name.endswith('.bias')
            index = assign(name, num_layers)
            custom_key = next((k for k in custom_keys if k in name), None)
            mults = custom.get(custom_key, {})
            key = (f'layer_{index}_{"no_decay" if no_decay else "decay"}'
                   + (f'_{custom_key}' if custom_key else ''))
            scale = rate ** (num_layers + 1 - index) * mults.get('lr_mult', 1.)
            group = groups.setdefault(key, dict(
                params=[], param_names=[], lr_scale=scale, lr=scale * self.base_lr,
                weight_decay=0. if no_decay else self.base_wd * mults.get('decay_mult', 1.),
                group_name=key))
            group['params'].append(param)
            group['param_names'].append(name)
        params.extend(groups.values())
