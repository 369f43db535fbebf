"""Nested structures of tensors (tuples, lists, dicts, as models return them)."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils._pytree import tree_map


def map_floats(tree: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``tree`` with ``fn`` applied to every floating-point tensor in it; the rest as it is."""
    return tree_map(lambda x: fn(x) if torch.is_tensor(x) and x.is_floating_point() else x, tree)
