"""The fp32 floor of a network on this CPU: its multiply-adds at the timed input over the best
matrix-product rate measured here (2 FLOPs a multiply-add). No network runs faster in fp32 than
its matrix work at the GEMM rate, so a time over the floor says how much goes elsewhere."""
from __future__ import annotations

import time

import torch

from .subjects import build_subjects, exported_subject, is_config, split_config


def gemm_gflops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """The best fp32 matrix-product rate of this machine (GFLOP/s) with ``threads`` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float('inf')
    for _ in range(repeats + 1):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def subject_macs(name: str, shape: list[int]) -> float:
    """Giga multiply-adds of one ``shape`` batch through a benchmark subject (an exported one
    counts as the PyTorch network it is exported from), by mmengine's counter."""
    from ..evaluation.complexity import macs, model_complexity
    if is_config(name):
        return shape[0] * model_complexity(split_config(name)[0], tuple(shape[2:]))['macs_g']
    exported = exported_subject(name)
    name = exported[0] if exported else name
    model = build_subjects([name])[name]
    model.eval()  # not chained: mmdet's ResNet.train() returns None
    return macs(model, torch.randn(*shape)) / 1e9


def floor_seconds(macs_g: float, gflops: float) -> float:
    """The time of ``macs_g`` giga multiply-adds at ``gflops``."""
    return 2 * macs_g / gflops
