"""The loss-based weighting methods: the update is the gradient of ``sum_t w_t L_t``.

``equal`` (weight 1 each, the same update as ``Joint``), ``fixed`` (as given), ``uncertainty``
(learned log-variances), ``dwa`` (from the rate at which each loss falls) and ``rlw`` (random).
None needs task gradients. (GradNorm also weights the losses, but learns its weights from the
task gradients' norms: ``gradnorm``.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ...core.checks import check_number, check_positive_int
from ...core.losses import check_weights
from .base import LossWeighting, OwnGenerator, OwnParameters


class EqualWeighting(LossWeighting):
    """Equal weighting: ``sum_t L_t`` (weight 1 each); the same update as ``Joint``."""

    name = "equal"

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(losses)


class FixedWeighting(LossWeighting):
    """Fixed weights ``{task: w}`` (finite, >= 0, one positive): ``sum_t w_t L_t``."""

    name = "fixed"

    def __init__(self, weights: Mapping[str, float]) -> None:
        super().__init__()
        if not isinstance(weights, Mapping) or not weights:
            raise ValueError(f"argument 'weights' is {weights!r}, expected a dict {{task: w}}")
        self.given = check_weights(weights, dict.fromkeys(weights))  # finite and >= 0

    def reset(self, tasks: Sequence[str]) -> None:
        super().reset(tasks)
        self.given = check_weights(self.given, dict.fromkeys(self.tasks))  # names must match

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.given[t] for t in self.tasks], dtype=losses.dtype,
                            device=losses.device)

    def __repr__(self) -> str:
        return f"FixedWeighting({self.given!r})"


class UncertaintyWeighting(OwnParameters, LossWeighting):
    """Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018, arXiv 1705.07115).

    Learns a log-variance ``s_t = log sigma_t^2`` per task and minimises
    ``sum_t exp(-s_t) L_t + s_t = sum_t L_t / sigma_t^2 + log sigma_t^2``: exactly twice the
    paper's regression term ``L_t / (2 sigma_t^2) + log sigma_t`` (a Gaussian likelihood),
    written as in the authors' example code (github.com/yaringal/multi-task-learning-example).
    It is not the paper's classification term ``L_t / sigma_t^2 + log sigma_t``, whose
    regulariser is half as large. The task weights are ``exp(-s_t) = 1 / sigma_t^2``.

    For fixed losses the optimum is ``s_t = log L_t`` (the gradient ``1 - exp(-s_t) L_t``
    vanishes there), i.e. weight ``1 / L_t``. The regression term has the same optimum ``s_t``
    with weight ``1 / (2 L_t)``; the classification term has ``s_t = log(2 L_t)``, also weight
    ``1 / (2 L_t)``. So all three weight the tasks in the same ratio; the factor 2 doubles
    every gradient (model's and ``s``'s), which is a learning-rate factor of 2 under SGD and
    changes (almost) nothing under Adam, which is scale-invariant. (LibMTL's ``UW`` implements
    the regression term itself, weights ``1 / (2 sigma^2)``.) ``s`` starts at 0 (weight 1) and
    is trained by the method's own Adam (``lr``).
    """

    name = "uncertainty"

    def __init__(self, lr: float = 1e-2) -> None:
        super().__init__(lr)

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.param)

    def regularizer(self) -> torch.Tensor:
        return self.param.sum()

    def update(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    @property
    def log_vars(self) -> torch.Tensor:
        """The learned log-variances ``s`` (T, detached)."""
        return self.param.detach()

    def __repr__(self) -> str:
        return f"UncertaintyWeighting(lr={self.lr})"


def dwa_weights(
    previous: torch.Tensor, before: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """Dynamic weight average (Liu, Johns & Davison, CVPR 2019):
    ``w = T softmax(r / temperature)`` with ``r_t = previous_t / before_t`` the rate at which
    task t's loss changed (T-vectors of loss averages of the last two periods)."""
    return len(previous) * torch.softmax((previous / before) / temperature, dim=0)


class DWA(LossWeighting):
    """Dynamic weight average (Liu et al., CVPR 2019): a task whose loss falls more slowly gets
    more weight. The losses are averaged over periods of ``window`` steps (the paper: one
    epoch); the weights of a period come from the two periods before it (``dwa_weights``),
    and are 1 until two periods have passed. Weights sum to T."""

    name = "dwa"

    def __init__(self, temperature: float = 2.0, window: int = 10) -> None:
        super().__init__()
        self.temperature = check_number("temperature", temperature, strict=True)
        self.window = check_positive_int("window", window)
        self.reset(["_"])

    def reset(self, tasks: Sequence[str]) -> None:
        super().reset(tasks)
        self.sums = [0.0] * len(self.tasks)
        self.count = 0
        self.averages: list[list[float]] = []  # the last two periods' average losses

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        if len(self.averages) < 2:
            w = torch.ones_like(losses)
        else:
            before, previous = (torch.tensor(a, dtype=torch.float64) for a in self.averages)
            w = dwa_weights(previous, before, self.temperature).to(losses)
        self.sums = [s + v for s, v in zip(self.sums, losses.detach().tolist(), strict=True)]
        self.count += 1
        if self.count == self.window:
            self.averages = [*self.averages, [s / self.window for s in self.sums]][-2:]
            self.sums, self.count = [0.0] * len(self.tasks), 0
        return w

    def state_dict(self) -> dict[str, Any]:
        return {"sums": list(self.sums), "count": self.count, "averages": list(self.averages)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sums, self.count = list(state["sums"]), int(state["count"])
        self.averages = [list(a) for a in state["averages"]]

    def __repr__(self) -> str:
        return f"DWA(temperature={self.temperature}, window={self.window})"


class RandomWeighting(OwnGenerator, LossWeighting):
    """Random loss weighting (Lin et al., "Reasonable effectiveness of random weighting",
    TMLR 2022): fresh weights ``softmax(N(0, I))`` every step (sum 1), from a generator
    seeded with ``seed`` (checkpointed)."""

    name = "rlw"

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        z = torch.randn(len(self.tasks), generator=self.generator)
        return torch.softmax(z, dim=0).to(losses)
