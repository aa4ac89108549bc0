"""The optimizers a strategy updates with: one shared, or one per task.

Alternating and sequential updates can use one optimizer for all tasks (``optimizers="shared"``:
Adam's moment estimates of the shared weights mix every task's gradients) or one per task
(``optimizers="per_task"``: each task's optimizer holds the shared weights and its own head, so
each keeps its own moments). ``make_optimizers`` builds either; ``TaskOptimizers`` and
``TaskSchedulers`` checkpoint the per-task ones together.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..core.checks import check_choice

OptimizerFactory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]
OptimizerSpec = (
    torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer] | OptimizerFactory | None
)
OPTIMIZER_MODES = ("shared", "per_task")


def _describe_state(state: object) -> str:
    if isinstance(state, Mapping):
        return f"entries {sorted(map(str, state))}"
    return f"a {type(state).__name__}"


class TaskOptimizers(dict):
    """One optimizer per task, ``{task: optimizer}``, saved and loaded together.

    ``state_dict()`` is ``{task: optimizer.state_dict()}`` (tensors and plain values, so a
    checkpoint holding it loads with ``weights_only=True``); ``load_state_dict`` checks every
    task's state before it changes any optimizer.
    """

    def state_dict(self) -> dict[str, Any]:
        return {name: opt.state_dict() for name, opt in self.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or set(state) != set(self):
            raise ValueError(
                f"the saved optimizer state holds {_describe_state(state)}, expected one "
                f"optimizer state per task {sorted(self)} (was it saved by a run with "
                "optimizers='shared', or with other tasks?)"
            )
        for name, opt in self.items():  # check all before loading any: no half-loaded state
            saved = state[name].get("param_groups") if isinstance(state[name], Mapping) else None
            sizes = [len(g["params"]) for g in opt.param_groups]
            if saved is None or [len(g["params"]) for g in saved] != sizes:
                raise ValueError(
                    f"the saved optimizer state of task {name!r} does not fit its optimizer "
                    f"(parameters per group: expected {sizes})"
                )
        for name, opt in self.items():
            opt.load_state_dict(state[name])


# The warning LRScheduler gives when its optimizer has not stepped before the scheduler's first
# step: expected here, since an alternating run steps every task's schedule at every global step
# (the learning rate follows training progress) but a task's optimizer only on its own steps.
_EARLY_SCHEDULER_STEP = re.escape("Detected call of `lr_scheduler.step()` before")


class TaskSchedulers(dict):
    """One learning-rate scheduler per task's optimizer, ``{task: scheduler}``.

    ``step()`` steps them all (once per training step, whichever task was updated, so every
    task's learning rate follows the same schedule over training). Saved and loaded together
    like ``TaskOptimizers``.
    """

    def step(self) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_EARLY_SCHEDULER_STEP)
            for scheduler in self.values():
                scheduler.step()

    @property
    def total_steps(self) -> int:
        """The planned steps of the (one-cycle) schedules; ``AttributeError`` if they have none."""
        totals = {getattr(s, "total_steps", None) for s in self.values()}
        if len(totals) != 1 or None in totals:
            raise AttributeError("these schedulers have no common 'total_steps'")
        return totals.pop()

    def state_dict(self) -> dict[str, Any]:
        return {name: s.state_dict() for name, s in self.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or set(state) != set(self):
            raise ValueError(
                f"the saved scheduler state holds {_describe_state(state)}, expected one "
                f"scheduler state per task {sorted(self)}"
            )
        for name, scheduler in self.items():
            scheduler.load_state_dict(state[name])


def _shared_and_head_parameters(
    model: nn.Module, tasks: Sequence[str]
) -> tuple[list[nn.Parameter], dict[str, list[nn.Parameter]]]:
    if not (hasattr(model, "shared_parameters") and hasattr(model, "task_parameters")):
        raise TypeError(
            f"per-task optimizers need a model with shared_parameters() and "
            f"task_parameters(task) (a MultiTaskModel), got a {type(model).__name__}"
        )
    return model.shared_parameters(), {t: model.task_parameters(t) for t in tasks}


def make_optimizers(
    model: nn.Module,
    tasks: Sequence[str],
    mode: str = "shared",
    optimizer: OptimizerSpec = None,
    lr: float = 1e-3,
) -> torch.optim.Optimizer | TaskOptimizers:
    """The optimizer(s) a strategy updates with.

    Args:
        model: the multi-task model.
        tasks: the task names (per-task mode: one optimizer each).
        mode: ``"shared"``: one optimizer over all of the model's parameters. ``"per_task"``:
            one optimizer per task over the shared (backbone) parameters and that task's head,
            so each task keeps its own state (Adam's moments) for the shared weights.
        optimizer: ``None`` (Adam with ``lr``); a factory ``params -> optimizer`` (either
            mode); an optimizer instance (shared mode); a dict ``{task: optimizer}`` (per-task
            mode).
        lr: the learning rate of the default Adam.

    Returns:
        An optimizer (shared) or a ``TaskOptimizers`` dict (per task).
    """
    check_choice("optimizers", mode, OPTIMIZER_MODES)
    if isinstance(optimizer, torch.optim.Optimizer):
        if mode == "per_task":
            raise ValueError(
                f"argument 'optimizer' is one {type(optimizer).__name__} instance, but the "
                "strategy uses one optimizer per task (optimizers='per_task'): pass a factory "
                "such as `lambda params: torch.optim.Adam(params, lr=1e-3)`, or a dict "
                "{task: optimizer}"
            )
        return optimizer
    if isinstance(optimizer, Mapping):
        if mode == "shared":
            raise ValueError(
                "argument 'optimizer' is a dict of optimizers, but the strategy uses one shared "
                "optimizer (optimizers='shared'): pass one optimizer, or use "
                "optimizers='per_task'"
            )
        if set(optimizer) != set(tasks):
            raise ValueError(
                f"argument 'optimizer' has optimizers for tasks {sorted(optimizer)}, expected "
                f"exactly {sorted(tasks)}"
            )
        bad = [t for t in tasks if not isinstance(optimizer[t], torch.optim.Optimizer)]
        if bad:
            raise TypeError(f"argument 'optimizer': the entries for {bad} are not optimizers")
        return TaskOptimizers({t: optimizer[t] for t in tasks})
    if optimizer is None:
        def factory(params: list[nn.Parameter]) -> torch.optim.Optimizer:
            return torch.optim.Adam(params, lr=lr)
    elif callable(optimizer):
        factory = optimizer
    else:
        raise TypeError(
            f"argument 'optimizer' is a {type(optimizer).__name__}, expected None, an optimizer, "
            "a dict {task: optimizer}, or a factory params -> optimizer"
        )

    def build(params: list[nn.Parameter]) -> torch.optim.Optimizer:
        opt = factory(params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(
                f"argument 'optimizer': the factory returned a {type(opt).__name__}, expected "
                "a torch.optim.Optimizer"
            )
        return opt

    if mode == "shared":
        return build(list(model.parameters()))
    shared, heads = _shared_and_head_parameters(model, tasks)
    return TaskOptimizers({t: build(shared + heads[t]) for t in tasks})
