"""LossScaleHook through mmengine's Runner and log processor (a CPU stand-in for the scaler)."""
import json

import torch
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from mmengine.runner import Runner

from mambaout_mm import LossScaleHook  # noqa: F401  (registers it)


class HalvingScaler:
    """What the hook reads of torch's GradScaler: a scale that halves at every step."""

    def __init__(self) -> None:
        self.scale = 1024.0

    def is_enabled(self) -> bool:
        return True

    def get_scale(self) -> float:
        return self.scale


@OPTIM_WRAPPERS.register_module(force=True)
class HalvingScaleOptimWrapper(OptimWrapper):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.loss_scaler = HalvingScaler()

    def update_params(self, loss, **kwargs) -> None:
        super().update_params(loss, **kwargs)
        self.loss_scaler.scale /= 2


class Toy(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(2, 1)

    def forward(self, inputs, mode='tensor'):
        return dict(loss=self.fc(torch.stack(inputs)).square().mean())


def test_the_scale_of_each_iteration_is_logged_as_it_was(tmp_path):
    runner = Runner(
        model=Toy(), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=[dict(inputs=torch.ones(2))] * 8, batch_size=2,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(by_epoch=False, max_iters=4),
        optim_wrapper=dict(type='HalvingScaleOptimWrapper',
                           optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='LossScaleHook')],
        visualizer=dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')]))
    runner.train()
    (scalars,) = tmp_path.glob('*/vis_data/scalars.json')
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    assert [r['fp16_scale'] for r in records] == [512.0, 256.0, 128.0, 64.0]  # not averaged
