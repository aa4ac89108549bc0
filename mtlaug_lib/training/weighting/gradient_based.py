"""The gradient-combination methods: PCGrad, MGDA, CAGrad and IMTL-G.

Each combines the T x D task gradients ``G`` into one direction ``d = w @ G`` of the shared
part, with the pure maths of ``training.gradients``; the weights ``w`` are implied. Each head is
trained on its own task's unweighted gradient (Sener & Koltun's Algorithm 2, as in LibMTL).
"""

from __future__ import annotations

import numpy as np
import torch

from ...core.checks import check_choice, check_number
from ..gradients import (
    cagrad,
    cagrad_update_weights,
    imtl_g,
    imtl_g_weights,
    mgda,
    min_norm_weights,
    pcgrad,
    pcgrad_coefficients,
    pcgrad_orders,
)
from .base import GradientWeighting, OwnGenerator


class PCGrad(OwnGenerator, GradientWeighting):
    """PCGrad (Yu et al., NeurIPS 2020): ``gradients.pcgrad``, each task's projection order
    drawn from a generator seeded with ``seed`` (checkpointed)."""

    name = "pcgrad"

    def solve(self, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return pcgrad(G, self.generator)

    def weights_from_gram(self, A: np.ndarray) -> np.ndarray:
        # The same generator on every process draws the same orders.
        return pcgrad_coefficients(A, pcgrad_orders(len(A), self.generator)).sum(axis=0)


class MGDA(GradientWeighting):
    """MGDA (Sener & Koltun, NeurIPS 2018): ``gradients.mgda``, the minimum-norm point of the
    convex hull of the task gradients. With ``source="representation"``: MGDA-UB.

    The minimum-norm point leans toward the task with the smallest gradient, so a task whose
    loss has a small scale (a loss averaged over many pixels) can take almost all the weight.
    ``normalize="l2"`` solves on unit task gradients instead, as Sener & Koltun's own code can;
    the returned weights then apply to the raw gradients (``w_i / |g_i|``), so ``d = w @ G``.
    """

    name = "mgda"

    def __init__(self, normalize: str | None = None) -> None:
        super().__init__()
        self.normalize = check_choice("normalize", normalize, (None, "l2"))

    def solve(self, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.normalize is None:
            return mgda(G)
        norms = G.norm(dim=1).clamp_min(1e-12)
        d, w = mgda(G / norms[:, None])
        return d, w / norms

    def weights_from_gram(self, A: np.ndarray) -> np.ndarray:
        if self.normalize is None:
            return min_norm_weights(A)
        norms = np.maximum(np.sqrt(np.maximum(A.diagonal(), 0.0)), 1e-12)
        return min_norm_weights(A / np.outer(norms, norms)) / norms

    def __repr__(self) -> str:
        return f"MGDA(normalize={self.normalize!r})"


class CAGrad(GradientWeighting):
    """CAGrad (Liu et al., NeurIPS 2021): ``gradients.cagrad`` with radius ``c``."""

    name = "cagrad"

    def __init__(self, c: float = 0.5) -> None:
        super().__init__()
        self.c = check_number("c", c)

    def solve(self, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return cagrad(G, self.c)

    def weights_from_gram(self, A: np.ndarray) -> np.ndarray:
        return cagrad_update_weights(A, self.c)

    def __repr__(self) -> str:
        return f"CAGrad(c={self.c})"


class IMTLG(GradientWeighting):
    """IMTL-G (Liu et al., ICLR 2021): ``gradients.imtl_g``, equal projections of the update on
    every task's unit gradient."""

    name = "imtl-g"

    def solve(self, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return imtl_g(G)

    def weights_from_gram(self, A: np.ndarray) -> np.ndarray:
        return imtl_g_weights(A)
