"""GradNorm (Chen et al., ICML 2018): loss weights learned to balance the task gradients'
norms. A loss-weighting method that needs the task gradients (their norms), with T learnable
weights trained by its own Adam."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ...core.checks import check_number
from ..gradients import check_gradients
from .base import Combination, OwnParameters, check_losses


class GradNorm(OwnParameters):
    """GradNorm (Chen et al., ICML 2018): learn loss weights that balance the tasks' gradient
    norms, ``|grad(w_t L_t)| = w_t |g_t|``, towards their mean times ``r_t^alpha``, where
    ``r_t`` is task t's loss ratio ``L_t / L_t(0)`` relative to the tasks' mean ratio (a task
    that trains more slowly gets a larger gradient).

    Each step: the model's update is the gradient of ``sum_t w_t L_t`` with the current
    weights; then one Adam step (``lr``) on ``sum_t |w_t |g_t| - mean(w |g|) r_t^alpha|``
    (the target held constant, as in the paper), and the weights are renormalised to sum to
    T. Needs the task gradients' norms: ``g_t`` from ``Weighted``'s source.
    """

    name = "gradnorm"
    uses_gradients = True
    init_value = 1.0

    def __init__(self, alpha: float = 1.5, lr: float = 0.025) -> None:
        super().__init__(lr)
        self.alpha = check_number("alpha", alpha)
        self.initial: torch.Tensor | None = None

    def reset(self, tasks: Sequence[str]) -> None:
        super().reset(tasks)
        self.initial = None  # the first step's losses, L_t(0)

    def combine(self, losses: torch.Tensor, grads: torch.Tensor | None = None) -> Combination:
        check_losses(losses, self.tasks, self.name)
        if grads is None:
            raise ValueError("GradNorm needs the task gradients: argument 'grads' is None")
        check_gradients(grads, "grads")
        used = self._learn(losses, grads.detach().norm(dim=1).to(self.param), grads)
        return Combination(weights=used, direction=used @ grads, head_weights=used)

    def combine_gram(
        self, losses: torch.Tensor, grads: torch.Tensor, A: np.ndarray
    ) -> Combination:
        """``combine`` with the norms of the global batch's task gradients from the diagonal
        of their Gram matrix ``A`` and the direction on this process's rows ``grads``."""
        check_losses(losses, self.tasks, self.name)
        norms = torch.as_tensor(np.sqrt(np.maximum(A.diagonal(), 0.0))).to(self.param)
        used = self._learn(losses, norms, grads)
        return Combination(weights=used, direction=used @ grads.detach(), head_weights=used)

    def _learn(self, losses: torch.Tensor, norms: torch.Tensor, grads: torch.Tensor
               ) -> torch.Tensor:
        """The step's weights (returned, detached) and one Adam step of them towards the
        balanced norms (``norms``: the task gradients' norms |g_t|)."""
        losses = losses.detach()
        if self.initial is None:
            self.initial = losses.clone()
        ratio = losses / self.initial.to(losses).clamp_min(1e-12)
        r = ratio / ratio.mean().clamp_min(1e-12)
        used = self.param.detach().clone().to(grads)
        balanced = self.param * norms  # w_t |g_t|
        target = (balanced.mean() * r.to(self.param) ** self.alpha).detach()
        self.optimizer.zero_grad(set_to_none=True)
        (balanced - target).abs().sum().backward()
        self.optimizer.step()
        with torch.no_grad():  # keep the weights positive and their sum at T
            self.param.clamp_(min=1e-6)
            self.param.mul_(len(self.tasks) / self.param.sum())
        return used

    def state_dict(self) -> dict[str, Any]:
        initial = None if self.initial is None else self.initial.cpu().clone()
        return {**super().state_dict(), "initial": initial}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.initial = state["initial"]

    def __repr__(self) -> str:
        return f"GradNorm(alpha={self.alpha}, lr={self.lr})"
