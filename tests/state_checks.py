"""Helpers shared by the tests of training, strategies, weighting and checkpoints."""

from __future__ import annotations

from typing import Any

import torch


def equal_states(a: Any, b: Any) -> bool:
    """Nested states (model, optimizer, scheduler, strategy) equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal_states(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(equal_states(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def random_G(T: int, D: int, seed: int) -> torch.Tensor:
    """T x D float64 task gradients drawn from ``seed``."""
    return torch.randn(T, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def conflicting_G(T: int, D: int, seed: int) -> torch.Tensor:
    """Gradients with at least one conflicting pair (<g_0, g_1> < 0)."""
    G = random_G(T, D, seed)
    if G[0] @ G[1] > 0:
        G[1] = -G[1]
    return G
