"""The update strategies: joint, alternating and sequential training, and their registry.

- ``Joint`` ("joint"): one forward pass, the weighted sum of the task losses, one backward, one
  step. Every task's gradient reaches the shared backbone in the same update.
- ``Alternating`` ("alternating", "alternating-random"): one task per step, round robin over a
  schedule or drawn at random from it. Each step runs the backbone and that task's head only,
  then backward and step on that task's (weighted) loss.
- ``Sequential`` ("sequential"): what the article meant by ``loss1.backward(); step();
  loss2.backward(); step()``, done right: within one batch, for each task in turn, a fresh
  forward pass, that task's loss, backward, step.

Alternating and sequential updates take one shared optimizer or one per task (see
``optimizers``). ``STRATEGIES`` maps each name to its class; ``registry.make_strategy`` builds a
strategy from a name (these, or a weighting method's). A new strategy is a ``Strategy`` subclass
(see ``strategy``) and one ``STRATEGIES`` entry.

Under torchrun, joint training runs in DistributedDataParallel; alternating and sequential
steps use one head at a time, so they take the bare model and average, after each backward,
exactly the gradients that step made (every process runs the same task at the same step:
the random draws of ``alternating-random`` come from the same seeded generator everywhere).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..core.checks import check_choice, check_seed
from ..core.losses import MultiTaskLoss
from .distributed import average_gradients, is_distributed
from .optimizers import OPTIMIZER_MODES
from .precision import backward, optimizer_step
from .strategy import (
    Batch,
    OptimizerArg,
    StepStats,
    Strategy,
    check_finite,
    forward_task,
    optimizer_for,
    task_loss,
    update,
)


class Joint(Strategy):
    """Joint training: one forward pass, the weighted sum of the task losses, one backward, one
    optimizer step. Every task's gradient reaches the shared backbone in the same update.

    Work per step: 1 forward, 1 backward, N images; every task sees the N images.
    """

    name = "joint"

    def step(self, model, batch, loss_fn, optimizer, step):  # noqa: D102 (see Strategy.step)
        if isinstance(optimizer, Mapping):
            raise TypeError(
                "Joint makes one update of the weighted sum of the losses, with one optimizer; "
                f"it got per-task optimizers for {tuple(optimizer)}"
            )
        outputs = model(batch["image"])
        losses = loss_fn.per_task(outputs, batch)
        floats = check_finite(losses, step)
        optimizer.zero_grad(set_to_none=True)
        backward(loss_fn.total(losses))
        optimizer_step(optimizer)
        return StepStats(floats, forward=1, backward=1, images=len(batch["image"]))


class _ScheduledStrategy(Strategy):
    """A strategy that updates tasks one at a time, in the order of a schedule of task names."""

    allow_repeats = True
    ddp = False  # a step uses some heads only: it averages the gradients it made itself

    def __init__(self, schedule: Sequence[str] | None = None, *, optimizers: str = "shared"):
        if schedule is not None:
            if isinstance(schedule, str) or not isinstance(schedule, Sequence) or not schedule:
                raise ValueError(
                    f"argument 'schedule' is {schedule!r}, expected None or a non-empty list of "
                    "task names"
                )
            if not all(isinstance(t, str) for t in schedule):
                raise ValueError(f"argument 'schedule' is {schedule!r}, expected task names")
            if not self.allow_repeats and len(set(schedule)) != len(schedule):
                raise ValueError(
                    f"argument 'schedule' is {list(schedule)}, expected each task at most once "
                    f"({type(self).__name__} updates every task once per batch)"
                )
            schedule = list(schedule)
        self.schedule = schedule
        self.optimizers = check_choice("optimizers", optimizers, OPTIMIZER_MODES)

    def tasks_in_order(self, loss_fn: MultiTaskLoss) -> list[str]:
        """The schedule checked against the run's tasks and weights; by default every task
        with a positive weight, in the tasks' order."""
        weights = loss_fn.weights
        if self.schedule is None:
            # A zero-weight task would get steps that its loss cannot move (a zero gradient),
            # but Adam's momentum still would: leave it out.
            return [t for t in loss_fn.tasks if weights[t] > 0]
        unknown = [t for t in self.schedule if t not in loss_fn.tasks]
        if unknown:
            raise ValueError(
                f"argument 'schedule' names unknown task(s) {unknown}, expected names from "
                f"{tuple(loss_fn.tasks)}"
            )
        zero = [t for t in dict.fromkeys(self.schedule) if weights[t] == 0]
        if zero:
            raise ValueError(
                f"argument 'schedule' names task(s) {zero} whose weight is 0: their updates "
                "would move the weights by the optimizer's momentum only; leave them out of the "
                "schedule or give them a positive weight"
            )
        return self.schedule

    def setup(self, loss_fn: MultiTaskLoss) -> None:  # noqa: D102 (see Strategy.setup)
        self.tasks_in_order(loss_fn)

    def _update_task(
        self,
        model: nn.Module,
        batch: Batch,
        loss_fn: MultiTaskLoss,
        optimizer: OptimizerArg,
        step: int,
        task: str,
    ) -> float:
        """Forward (backbone and this task's head), loss, backward, step; the loss as a float."""
        output = forward_task(model, batch["image"], task)
        loss = task_loss(loss_fn, task, output, batch)
        value = check_finite({task: loss}, step)[task]
        weight = loss_fn.weights[task]
        opt = optimizer_for(optimizer, task)
        if not is_distributed():
            update(opt, loss if weight == 1 else weight * loss)
            return value
        # Every process updates the same task at this step, so the parameters that got a
        # gradient (the backbone and this task's head) are the same everywhere: average exactly
        # those, in one bucket. (Plain DDP would wait for the other heads' gradients.)
        opt.zero_grad(set_to_none=True)
        backward(loss if weight == 1 else weight * loss)
        average_gradients(p for group in opt.param_groups for p in group["params"])
        optimizer_step(opt)
        return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(schedule={self.schedule!r}, optimizers={self.optimizers!r})"


class Alternating(_ScheduledStrategy):
    """Alternating training: each step updates one task, on its own forward pass.

    A step runs the backbone and the chosen task's head only, computes that task's loss times
    its weight, and makes one backward and one optimizer step. Round robin (default) follows
    ``schedule`` cyclically; ``random=True`` draws each step's task uniformly from
    ``schedule`` (a task listed twice is drawn twice as often) with a generator seeded by
    ``seed``. The position in the schedule and the generator are checkpointed. An instance
    keeps its position from one ``train`` call to the next (pass a new one, or the name, for a
    fresh start).

    Work per step: 1 forward, 1 backward, N images; one task sees the N images, so each task
    sees a batch every T steps (T tasks, round robin).

    Args:
        schedule: task names in update order (repeats allowed); default every task with a
            positive weight, in the tasks' order.
        random: draw the task at random instead of round robin.
        seed: the seed of the random draws.
        optimizers: ``"shared"`` (one optimizer: Adam's moments of the shared weights mix the
            tasks' gradients) or ``"per_task"`` (one per task over shared weights and its head).
    """

    def __init__(
        self,
        schedule: Sequence[str] | None = None,
        *,
        random: bool = False,
        seed: int = 0,
        optimizers: str = "shared",
    ) -> None:
        super().__init__(schedule, optimizers=optimizers)
        self.seed = check_seed(seed)
        self.random = bool(random)
        self.name = "alternating-random" if self.random else "alternating"
        self.position = 0  # steps taken: the round robin's place in the schedule
        self.generator = torch.Generator().manual_seed(self.seed)
        self.last_task: str | None = None

    def next_task(self, schedule: Sequence[str]) -> str:
        """The task of the next step (advances the round robin or the random generator)."""
        if self.random:
            index = int(torch.randint(len(schedule), (1,), generator=self.generator))
        else:
            index = self.position % len(schedule)
        self.position += 1
        return schedule[index]

    def step(
        self,
        model: nn.Module,
        batch: Batch,
        loss_fn: MultiTaskLoss,
        optimizer: OptimizerArg,
        step: int,
    ) -> StepStats:
        """One update of the next task (see ``Strategy.step``)."""
        task = self.next_task(self.tasks_in_order(loss_fn))
        self.last_task = task
        value = self._update_task(model, batch, loss_fn, optimizer, step, task)
        n = len(batch["image"])
        return StepStats({task: value}, forward=1, backward=1, images=n, seen={task: n})

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"strategy": self.name, "schedule": self.schedule,
                                 "position": self.position}
        if self.random:
            state["generator"] = self.generator.get_state()  # a uint8 tensor: weights_only-safe
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("strategy") != self.name:
            raise ValueError(
                f"the checkpoint's strategy state is {dict(state)!r}, expected the state of "
                f"{self.name!r} (resume with the strategy the run was started with)"
            )
        if state.get("schedule") != self.schedule:
            raise ValueError(
                f"the checkpoint's schedule is {state.get('schedule')!r}, this strategy's is "
                f"{self.schedule!r}"
            )
        self.position = int(state["position"])
        if self.random:
            self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return (f"Alternating(schedule={self.schedule!r}, random={self.random}, "
                f"seed={self.seed}, optimizers={self.optimizers!r})")


class Sequential(_ScheduledStrategy):
    """The article's loop done right: every task updates in turn within one batch.

    For each task of ``schedule`` in turn: a fresh forward pass (backbone and that task's
    head), that task's loss times its weight, backward, optimizer step. A later task's forward
    pass sees the weights that the earlier tasks' updates left, so nothing is backpropagated
    through weights modified in place (the article's error).

    Work per step: T forward, T backward, T x N images (T tasks); every task sees the N images.

    Args:
        schedule: the tasks' order within a batch (each at most once); default every task with
            a positive weight, in the tasks' order.
        optimizers: ``"shared"`` or ``"per_task"``, as for ``Alternating``.
    """

    name = "sequential"
    allow_repeats = False

    def step(
        self,
        model: nn.Module,
        batch: Batch,
        loss_fn: MultiTaskLoss,
        optimizer: OptimizerArg,
        step: int,
    ) -> StepStats:
        """One update per task of the schedule, in turn (see ``Strategy.step``)."""
        order = self.tasks_in_order(loss_fn)
        losses = {t: self._update_task(model, batch, loss_fn, optimizer, step, t) for t in order}
        n = len(batch["image"])
        return StepStats(losses, forward=len(order), backward=len(order), images=len(order) * n,
                         seen={t: n for t in order})


STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "joint": Joint,
    "alternating": Alternating,
    "alternating-random": lambda **options: Alternating(random=True, **options),
    "sequential": Sequential,
}
