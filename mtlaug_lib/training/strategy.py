"""The strategy protocol: how one batch updates a multi-task model, and the work it reports.

A ``Strategy`` turns one batch into one or more optimizer updates and reports the work it did
(``StepStats``: forward and backward passes through the shared backbone, images through it, and
the images each task's loss saw), so that ``train`` can compare strategies at equal compute.
The concrete strategies live in ``strategies`` (joint, alternating, sequential) and
``weighting.weighted`` (a weighting method as a strategy); ``registry.make_strategy`` builds any
of them from its name.

The helpers here are shared by the strategies: ``check_finite`` (stop before a non-finite loss
spreads), ``forward_task`` and ``task_loss`` (one task's output and loss alone), ``update`` (one
backward and optimizer step) and ``optimizer_for`` (a task's optimizer, shared or its own).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core.losses import MultiTaskLoss
from ..core.models import MultiTaskModel
from .precision import backward, optimizer_step

Batch = Mapping[str, torch.Tensor]
OptimizerArg = torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer]  # what step() gets


class NonFiniteLossError(RuntimeError):
    """A task's loss became NaN or infinite; raised before the update that would spread it."""


def check_finite(losses: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
    """The losses as floats (one device sync for all), or a clear error naming task and step."""
    values = torch.stack([v.detach().float() for v in losses.values()]).tolist()
    floats = dict(zip(losses, values, strict=True))
    for name, value in floats.items():
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"the loss of task {name!r} is {value} at step {step}; training stopped before "
                "this update. Lower the learning rate, or check that task's labels and outputs."
            )
    return floats


@dataclass
class StepStats:
    """What one strategy step did: per-task losses (floats) and the work it took.

    ``losses`` holds the tasks whose loss the step computed (all tasks for ``Joint``, one for
    ``Alternating``). ``seen[task]`` is the number of images that task's loss was computed on;
    left out, each task in ``losses`` counts ``images // forward`` (one pass's batch).
    ``weights`` is ``{task: weight}`` for strategies that choose task weights each step
    (``weighting.Weighted``); ``train`` records it in ``History.weights``.
    """

    losses: dict[str, float]
    forward: int  # forward passes through the shared backbone
    backward: int  # backward passes through the shared backbone
    images: int  # images that went through the backbone (forward), all passes counted
    seen: dict[str, int] | None = None  # images each task's loss saw
    weights: dict[str, float] | None = None  # the step's task weights (weighting methods)

    def __post_init__(self) -> None:
        if self.seen is None:
            per_pass = self.images // self.forward if self.forward else 0
            self.seen = {name: per_pass for name in self.losses}


class Strategy:
    """How one batch updates the model. Subclasses implement ``step``.

    ``optimizers`` (``"shared"`` or ``"per_task"``) tells ``train`` which optimizers to build
    (see ``optimizers.make_optimizers``); ``step`` uses whatever it is given.
    """

    name = "strategy"
    optimizers = "shared"
    # Under torchrun: True, ``train`` hands ``step`` the model wrapped in DistributedDataParallel
    # (every parameter gets a gradient every step); False, ``step`` gets the bare model and
    # averages the gradients it made itself (``distributed.average_gradients``).
    ddp = True

    def setup(self, loss_fn: MultiTaskLoss) -> None:
        """Check the strategy's options against the run's tasks and weights; ``train`` calls
        this before anything changes. Raise a clear error if they do not fit."""

    def step(
        self,
        model: nn.Module,
        batch: Batch,
        loss_fn: MultiTaskLoss,
        optimizer: OptimizerArg,
        step: int,
    ) -> StepStats:
        """Update ``model`` on ``batch`` (``{"image": N x 3 x H x W, task: labels, ...}``);
        ``step`` is the 0-based training step (for error messages)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (for strategies that keep some, such as a task schedule)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def forward_task(model: nn.Module, images: torch.Tensor, task: str) -> torch.Tensor:
    """One task's output for ``images`` (N x 3 x H x W): N x C (x H x W).

    For a ``MultiTaskModel`` (with its own ``forward``) only the backbone and that task's head
    run, not the other heads; a model with ``forward_tasks(x, tasks)`` (the architectures of
    ``core.architectures``) runs what that task needs; any other model runs whole and the
    task's output is picked.
    """
    if isinstance(model, MultiTaskModel) and type(model).forward is MultiTaskModel.forward:
        if task not in model.heads:
            raise KeyError(f"task {task!r} is not one of this model's tasks {model.tasks}")
        return model.heads[task](model.backbone(images))
    forward_tasks = getattr(model, "forward_tasks", None)
    if callable(forward_tasks):
        return forward_tasks(images, (task,))[task]
    return model(images)[task]


def task_loss(
    loss_fn: MultiTaskLoss, task: str, output: torch.Tensor, batch: Batch
) -> torch.Tensor:
    """Task ``task``'s unweighted loss (a scalar tensor) with ``loss_fn``'s checks and batch
    handling, for an output of that task alone (``MultiTaskLoss.per_task`` wants every task)."""
    return MultiTaskLoss({task: loss_fn.tasks[task]}).per_task({task: output}, batch)[task]


def optimizer_for(optimizer: OptimizerArg, task: str) -> torch.optim.Optimizer:
    """The optimizer that updates ``task``: its own (per-task optimizers) or the shared one."""
    if isinstance(optimizer, Mapping):
        if task not in optimizer:
            raise KeyError(
                f"no optimizer for task {task!r} among the per-task optimizers {tuple(optimizer)}"
            )
        return optimizer[task]
    return optimizer


def update(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One update: zero the gradients, backpropagate ``loss`` (a scalar), step."""
    # set_to_none=True matters: a head that this loss does not reach keeps grad None, so the
    # optimizer skips it. Zeroed (not None) grads would let Adam move it by its momentum alone.
    optimizer.zero_grad(set_to_none=True)
    backward(loss)  # loss.backward(), of the scaled loss under fp16 (``precision``)
    optimizer_step(optimizer)
