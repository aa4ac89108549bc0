"""What every weighting method is: the base class, its result, and the two kinds of method.

A ``WeightingMethod`` gets, at each step, the T task losses (a T-vector, in the tasks' order)
and, if it ``uses_gradients``, the T x D matrix of task gradients on the shared part (from a
``gradient_source``); ``combine`` returns a ``Combination``: the step's task weights (recorded in
the history) and either a loss to backpropagate or the combined gradient of the shared part.

- ``LossWeighting``: a method that weights the losses (subclasses give ``weights(losses)``);
- ``GradientWeighting``: a method that combines the task gradients (subclasses give
  ``solve(G) -> (d, w)`` with ``d = w @ G``, from the pure maths in ``training.gradients``);
- ``OwnParameters``: the mixin of a method with T learnable parameters trained by its own Adam;
- ``OwnGenerator``: the mixin of a method that draws from its own seeded random generator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ...core.checks import check_number


@dataclass
class Combination:
    """What a method makes of one step.

    Attributes:
        weights: T, detached: the task weights of the step (for gradient-combination methods
            the implied weights: ``direction = weights @ G``).
        loss: a scalar to backpropagate through the whole model (loss-based methods).
        direction: D, the combined gradient of the shared part (methods that use gradients).
        head_weights: T, what each head's own gradient is multiplied by (with ``direction``).
    """

    weights: torch.Tensor
    loss: torch.Tensor | None = None
    direction: torch.Tensor | None = None
    head_weights: torch.Tensor | None = None


def check_losses(losses: torch.Tensor, tasks: Sequence[str], who: str) -> None:
    """A clear error unless ``losses`` is a T-vector, one loss per task of ``tasks``."""
    if not isinstance(losses, torch.Tensor) or losses.shape != (len(tasks),):
        shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
        raise ValueError(
            f"{who}: argument 'losses' is {shape}, expected a tensor of {len(tasks)} losses (one "
            f"per task {tuple(tasks)}); call reset(tasks) first if the tasks changed"
        )


class WeightingMethod:
    """A multi-task weighting method (base class).

    ``reset(tasks)`` starts a run (``Weighted.setup`` calls it); ``combine(losses, grads)`` makes
    one step's ``Combination``; ``update()`` steps the method's own parameters after the model's
    update. ``losses`` is a T-vector of the tasks' losses (with their autograd graph), ``grads``
    the T x D task gradients (only for methods that ``uses_gradients``).
    """

    name = "weighting"
    uses_gradients = False

    def __init__(self) -> None:
        self.tasks: list[str] = []

    def reset(self, tasks: Sequence[str]) -> None:
        """Start a run on ``tasks`` (names, in the order of the losses): fresh state."""
        if not tasks or not all(isinstance(t, str) for t in tasks):
            raise ValueError(f"argument 'tasks' is {tasks!r}, expected a non-empty list of names")
        self.tasks = list(tasks)

    def combine(self, losses: torch.Tensor, grads: torch.Tensor | None = None) -> Combination:
        """One step's ``Combination`` from the T losses (and the T x D task gradients)."""
        raise NotImplementedError

    def parameters(self) -> list[nn.Parameter]:
        """The method's learnable parameters (trained by its own optimizer)."""
        return []

    def update(self) -> None:
        """Step the method's own parameters (after the model's update); nothing by default."""

    def to(self, device: torch.device) -> WeightingMethod:
        """Move the learnable parameters to ``device`` (the optimizer keeps them: same objects)."""
        for p in self.parameters():
            if p.device != device:
                p.data = p.data.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()`` (after ``reset``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class OwnParameters(WeightingMethod):
    """A method with T learnable parameters and its own Adam optimizer over them."""

    init_value = 0.0

    def __init__(self, lr: float) -> None:
        super().__init__()
        self.lr = check_number("lr", lr, strict=True)
        self.param = nn.Parameter(torch.zeros(0))
        self.optimizer = torch.optim.Adam([self.param], lr=self.lr)

    def reset(self, tasks: Sequence[str]) -> None:
        super().reset(tasks)
        self.param = nn.Parameter(torch.full((len(self.tasks),), self.init_value))
        self.optimizer = torch.optim.Adam([self.param], lr=self.lr)

    def parameters(self) -> list[nn.Parameter]:
        return [self.param]

    def state_dict(self) -> dict[str, Any]:
        return {"param": self.param.detach().cpu().clone(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if tuple(state["param"].shape) != tuple(self.param.shape):
            raise ValueError(
                f"the saved {self.name} state has {tuple(state['param'].shape)} parameters, "
                f"expected {len(self.tasks)} (one per task)"
            )
        with torch.no_grad():
            self.param.copy_(state["param"])
        self.optimizer.load_state_dict(state["optimizer"])


class OwnGenerator(WeightingMethod):
    """A method that draws from its own random generator, seeded with ``seed``: restarted by
    ``reset`` and checkpointed, so a resumed run draws what an uninterrupted one would."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def reset(self, tasks: Sequence[str]) -> None:
        super().reset(tasks)
        self.generator = torch.Generator().manual_seed(self.seed)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed})"


class LossWeighting(WeightingMethod):
    """A method that weights the losses: the update is the gradient of
    ``sum_t w_t L_t + regularizer()``. Subclasses implement ``weights(losses) -> w`` (T)."""

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def regularizer(self) -> torch.Tensor | float:
        return 0.0

    def combine(self, losses: torch.Tensor, grads: torch.Tensor | None = None) -> Combination:
        check_losses(losses, self.tasks, self.name)
        w = self.weights(losses)
        return Combination(weights=w.detach(), loss=(w * losses).sum() + self.regularizer())


class GradientWeighting(WeightingMethod):
    """A method that combines the task gradients ``G`` (T x D) into one direction ``d`` (D);
    subclasses implement ``solve(G) -> (d, w)`` with ``d = w @ G`` (see ``gradients``)."""

    uses_gradients = True

    def solve(self, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def combine(self, losses: torch.Tensor, grads: torch.Tensor | None = None) -> Combination:
        check_losses(losses, self.tasks, self.name)
        if grads is None:
            raise ValueError(f"{self.name} needs the task gradients: argument 'grads' is None")
        if len(grads) != len(self.tasks):
            raise ValueError(
                f"argument 'grads' has {len(grads)} rows, expected one per task {self.tasks}"
            )
        d, w = self.solve(grads.detach())
        return Combination(weights=w, direction=d, head_weights=torch.ones_like(w))

    def weights_from_gram(self, A: np.ndarray) -> np.ndarray:
        """The weights ``w`` (T) of ``solve``'s ``d = w @ G`` from the Gram matrix ``A = G G^T``
        (T x T, float64) alone. Every method here is decided by ``A``, which is what lets a
        distributed run reduce T x T numbers instead of T x D (``combine_gram``)."""
        raise NotImplementedError

    def combine_gram(
        self, losses: torch.Tensor, grads: torch.Tensor, A: np.ndarray
    ) -> Combination:
        """``combine`` with the weights solved on ``A`` (the global batch's Gram matrix) and the
        direction ``w @ grads`` on this process's rows ``grads`` (its shard of the global G)."""
        check_losses(losses, self.tasks, self.name)
        w = torch.as_tensor(self.weights_from_gram(A), dtype=grads.dtype, device=grads.device)
        return Combination(weights=w, direction=w @ grads.detach(),
                           head_weights=torch.ones_like(w))
