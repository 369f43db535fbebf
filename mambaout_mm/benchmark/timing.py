"""Interleaved timing: one run of each subject per round, medians and spread."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch


def _sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


@dataclass
class Timing:
    name: str
    mode: str
    dtype: str
    times_s: list[float] = field(default_factory=list)
    peak_mem_mb: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times_s)

    @property
    def spread(self) -> float:
        """Half the interquartile range, relative to the median."""
        if len(self.times_s) < 4:
            return (max(self.times_s) - min(self.times_s)) / 2 / self.median
        q = statistics.quantiles(self.times_s, n=4)
        return (q[2] - q[0]) / 2 / self.median


def time_interleaved(steps: dict[str, Callable[[], None]], device: str, warmup: int,
                     repeats: int) -> dict[str, list[float]]:
    """Warm every step up, then time ``repeats`` rounds of one run of each step, in turn."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times
