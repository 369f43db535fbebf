"""The training hooks through mmengine's Runner (a CPU stand-in for the FP16 loss scaler)."""
import json

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from mmengine.runner import Runner

from mambaout_mm import LossScaleHook, NonFiniteLossHook  # noqa: F401  (registers them)
from mambaout_mm.utils.errors import NonFiniteLossError


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


class DivergesAt(BaseModel):
    """A toy whose loss is NaN from the sample with ``nan`` in it onwards."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(2, 1)

    def forward(self, inputs, mode='tensor'):
        x = torch.stack(inputs)
        return dict(loss_fit=self.fc(x).square().mean(), loss_aux=self.fc.bias.sum() * 0 + 1)


def diverging_runner(tmp_path, wrapper: str, nan_from: int, patience: int) -> Runner:
    samples = [dict(inputs=torch.ones(2) if i < nan_from else torch.full((2,), float('nan')))
               for i in range(8)]
    return Runner(
        model=DivergesAt(), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=samples, batch_size=1,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(by_epoch=False, max_iters=8),
        optim_wrapper=dict(type=wrapper, optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False)),
        custom_hooks=[dict(type='NonFiniteLossHook', patience=patience)])


def test_a_diverged_loss_stops_the_run_before_its_checkpoint(tmp_path):
    runner = diverging_runner(tmp_path, 'OptimWrapper', nan_from=2, patience=3)
    with pytest.raises(NonFiniteLossError, match=r'not finite at iteration 3: loss=nan, '
                       r'loss_fit=nan\. Training stopped.*Continue from .*iter_2\.pth '
                       r'with --resume'):
        runner.train()
    assert sorted(p.name for p in tmp_path.glob('iter_*.pth')) == ['iter_1.pth', 'iter_2.pth']


def test_under_a_dynamic_loss_scale_skipped_steps_are_allowed_up_to_the_patience(tmp_path):
    runner = diverging_runner(tmp_path, 'HalvingScaleOptimWrapper', nan_from=5, patience=2)
    with pytest.raises(NonFiniteLossError, match=r'iteration 7 \(2 iterations in a row\)'):
        runner.train()
