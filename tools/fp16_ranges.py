"""Where FP16 training comes close to float16's range (65504): the largest magnitudes at the sites
known to overflow, in one training step under CUDA's FP16 autocast policy (emulated on a CPU,
``mambaout_mm.engine.fp16_emulation``), random inputs with annotations, batch of the given shape.

    python tools/fp16_ranges.py CONFIG [--shape N C H W] [--weights init|trained-scale]

Sites: each stage's residual stream (block outputs; float32 on a GPU, since the LayerNorms
return float32 and the shortcut adds to it), each stage's gate product act(g) * [i, conv(c)]
(the input of fc2, float16), the backbone's output norms, the neck and the heads (the mask head
of Mask R-CNN, the decode heads' last layers of UperNet). ``trained-scale`` spreads the backbone's
weights as trained ones are (``mambaout_mm.models.random_weights.randomize_``); ``init`` is its
initialisation.
"""
import argparse
import math

import torch

from mambaout_mm.benchmark.subjects import default_shape
from mambaout_mm.benchmark.synthetic import ConfigModel
from mambaout_mm.engine.fp16_emulation import gpu_fp16_autocast, largest_values
from mambaout_mm.models.mambaout import GatedCNNBlock
from mambaout_mm.models.random_weights import randomize_
from mambaout_mm.utils import cli

LOSS_SCALE = 2 ** 16  # AmpOptimWrapper's initial loss scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=4, metavar=('N', 'C', 'H', 'W'))
    parser.add_argument('--weights', choices=['init', 'trained-scale'], default='init')
    args = cli.add_debug_flag(parser).parse_args()
    shape = args.shape or default_shape([args.config])
    torch.manual_seed(0)
    model = ConfigModel(args.config)
    net = model.model.train()
    backbone = net.backbone
    if args.weights == 'trained-scale':
        randomize_(backbone)
    stages = {f'stage {i} residual': [stage] for i, stage in enumerate(backbone.stages)}
    gates = {f'stage {i} gate product': [b.fc2 for b in stage if isinstance(b, GatedCNNBlock)]
             for i, stage in enumerate(backbone.stages)}
    heads = {name: [getattr(backbone, name)] for name in dir(backbone)
             if name.startswith('norm') and name[4:].isdigit()}
    # the heads' last layers (mmseg's heads run forward() directly, which hooks do not see)
    for path in ('neck', 'roi_head.mask_head', 'decode_head.fpn_bottleneck', 'decode_head.conv_seg',
                 'auxiliary_head.conv_seg'):
        module = net
        for part in path.split('.'):
            module = getattr(module, part, None)
        if module is not None:
            heads[path] = [module]
    data = model.batch(shape, training=True)
    with gpu_fp16_autocast() as mode, largest_values({**stages, **heads}) as outs, \
            largest_values(gates, inputs=True) as ins:
        loss = net.parse_losses(net(**data, mode='loss'))[0]
    (loss * LOSS_SCALE).backward()
    grads = {name: p.grad.abs().max().item() for name, p in net.named_parameters()
             if p.grad is not None}
    print(f'{args.config}, {"x".join(map(str, shape))}, {args.weights} weights: loss '
          f'{loss.item():.3f}, {mode.overflows} fp16 overflows in the forward, largest fp16 '
          f'result {mode.max_abs:.4g}, largest scaled gradient {max(grads.values()):.4g}')
    print('| site | max abs |\n|---|---|')
    for name, value in {**outs, **ins}.items():
        print(f'| {name} | {value:.4g} |')
    print(f'\n| module | parameters | gradients inf/nan at scale {LOSS_SCALE} | largest finite |'
          '\n|---|---|---|---|')
    for module, values in gradients_by_module(grads).items():
        finite = [v for v in values if math.isfinite(v)]
        print(f'| {module} | {len(values)} | {len(values) - len(finite)} | '
              f'{max(finite, default=math.nan):.4g} |')
    overflowed = [name for name, value in grads.items() if not math.isfinite(value)]
    print(f'\nGradients inf/nan at scale {LOSS_SCALE}: {", ".join(overflowed) or "none"}')


def gradients_by_module(grads: dict[str, float], depth: int = 2) -> dict[str, list[float]]:
    """The parameters' largest scaled gradients grouped by the first ``depth`` parts of their
    names (``roi_head.mask_head``, ``backbone.stages``...), in the model's order."""
    groups: dict[str, list[float]] = {}
    for name, value in grads.items():
        groups.setdefault('.'.join(name.split('.')[:depth]), []).append(value)
    return groups


if __name__ == '__main__':
    cli.run(main)
