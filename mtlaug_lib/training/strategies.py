"""Update strategies: how one batch updates a multi-task model, and how tasks' gradients conflict.

A ``Strategy`` turns one batch into one or more optimizer updates and reports the work it did
(``StepStats``: forward and backward passes through the shared backbone, images through it, and
the images each task's loss saw), so that ``train`` can compare strategies at equal compute.

- ``Joint`` ("joint"): one forward pass, the weighted sum of the task losses, one backward, one
  step. Every task's gradient reaches the shared backbone in the same update.
- ``Alternating`` ("alternating", "alternating-random"): one task per step, round robin over a
  schedule or drawn at random from it. Each step runs the backbone and that task's head only,
  then backward and step on that task's (weighted) loss.
- ``Sequential`` ("sequential"): what the seed article meant by ``loss1.backward(); step();
  loss2.backward(); step()``, done right: within one batch, for each task in turn, a fresh
  forward pass, that task's loss, backward, step.

Alternating and sequential updates can use one optimizer for all tasks (``optimizers="shared"``:
Adam's moment estimates of the shared weights mix every task's gradients) or one per task
(``optimizers="per_task"``: each task's optimizer holds the shared weights and its own head, so
each keeps its own moments). ``make_optimizers`` builds either; ``TaskOptimizers`` and
``TaskSchedulers`` checkpoint them together.

Gradient conflict: ``task_gradients`` gives each task's gradient on the shared parameters,
``cosine_matrix`` and ``pairwise_cosines`` compare them, and ``gradient_conflict`` measures it in
the middle of training without changing what training does (``train(..., conflict_every=k)``).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core.losses import MultiTaskLoss
from ..core.models import MultiTaskModel
from ..core.tasks import Task

Batch = Mapping[str, torch.Tensor]
OptimizerFactory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]
OptimizerSpec = (
    torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer] | OptimizerFactory | None
)
OptimizerArg = torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer]  # what step() gets
OPTIMIZER_MODES = ("shared", "per_task")


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


# ---- per-task optimizers --------------------------------------------------------------------


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
    if mode not in OPTIMIZER_MODES:
        raise ValueError(f"argument 'optimizers' is {mode!r}, expected one of {OPTIMIZER_MODES}")
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


# ---- helpers of the strategies --------------------------------------------------------------


def forward_task(model: nn.Module, images: torch.Tensor, task: str) -> torch.Tensor:
    """One task's output for ``images`` (N x 3 x H x W): N x C (x H x W).

    For a ``MultiTaskModel`` (with its own ``forward``) only the backbone and that task's head
    run, not the other heads; any other model runs whole and the task's output is picked.
    """
    if isinstance(model, MultiTaskModel) and type(model).forward is MultiTaskModel.forward:
        if task not in model.heads:
            raise KeyError(f"task {task!r} is not one of this model's tasks {model.tasks}")
        return model.heads[task](model.backbone(images))
    return model(images)[task]


def task_loss(
    loss_fn: MultiTaskLoss, task: str, output: torch.Tensor, batch: Batch
) -> torch.Tensor:
    """Task ``task``'s unweighted loss (a scalar tensor) with ``loss_fn``'s checks and batch
    handling, for an output of that task alone (``MultiTaskLoss.per_task`` wants every task)."""
    return MultiTaskLoss({task: loss_fn.tasks[task]}).per_task({task: output}, batch)[task]


def _optimizer_for(optimizer: OptimizerArg, task: str) -> torch.optim.Optimizer:
    if isinstance(optimizer, Mapping):
        if task not in optimizer:
            raise KeyError(
                f"no optimizer for task {task!r} among the per-task optimizers {tuple(optimizer)}"
            )
        return optimizer[task]
    return optimizer


def _update(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    # set_to_none=True matters: a head that this loss does not reach keeps grad None, so the
    # optimizer skips it. Zeroed (not None) grads would let Adam move it by its momentum alone.
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


# ---- the strategies -------------------------------------------------------------------------


class Strategy:
    """How one batch updates the model. Subclasses implement ``step``.

    ``optimizers`` (``"shared"`` or ``"per_task"``) tells ``train`` which optimizers to build
    (see ``make_optimizers``); ``step`` uses whatever it is given.
    """

    name = "strategy"
    optimizers = "shared"

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
        loss_fn.total(losses).backward()
        optimizer.step()
        return StepStats(floats, forward=1, backward=1, images=len(batch["image"]))


class _ScheduledStrategy(Strategy):
    """A strategy that updates tasks one at a time, in the order of a schedule of task names."""

    allow_repeats = True

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
        if optimizers not in OPTIMIZER_MODES:
            raise ValueError(
                f"argument 'optimizers' is {optimizers!r}, expected one of {OPTIMIZER_MODES}"
            )
        self.schedule = schedule
        self.optimizers = optimizers

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
        _update(_optimizer_for(optimizer, task), loss if weight == 1 else weight * loss)
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
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"argument 'seed' is {seed!r}, expected an integer >= 0")
        self.random = bool(random)
        self.seed = seed
        self.name = "alternating-random" if self.random else "alternating"
        self.position = 0  # steps taken: the round robin's place in the schedule
        self.generator = torch.Generator().manual_seed(seed)
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
    """The seed article's loop done right: every task updates in turn within one batch.

    For each task of ``schedule`` in turn: a fresh forward pass (backbone and that task's
    head), that task's loss times its weight, backward, optimizer step. A later task's forward
    pass sees the weights that the earlier tasks' updates left, so nothing is backpropagated
    through weights modified in place (the seed's error).

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


def make_strategy(strategy: str | Strategy, **options: Any) -> Strategy:
    """A ``Strategy`` from its name, with ``options`` passed to its class, or as given.

    ``make_strategy("alternating", optimizers="per_task")`` is
    ``Alternating(optimizers="per_task")``. The name of a weighting method (``"mgda"``,
    ``"pcgrad"``, ...; see ``weighting.WEIGHTINGS``) gives ``weighting.Weighted(name,
    **options)``: ``make_strategy("mgda", source="parameters")``.
    """
    from .weighting import WEIGHTINGS, Weighted  # here: weighting builds on this module

    if isinstance(strategy, Strategy):
        if options:
            raise ValueError(
                f"options {sorted(options)} were given with a Strategy instance; set them when "
                "creating it"
            )
        return strategy
    if isinstance(strategy, str) and strategy in WEIGHTINGS and strategy not in STRATEGIES:
        return Weighted(strategy, **options)
    if strategy not in STRATEGIES:
        raise ValueError(
            f"argument 'strategy' is {strategy!r}, expected one of {tuple(STRATEGIES)}, a "
            f"weighting method {tuple(WEIGHTINGS)}, or a Strategy instance"
        )
    if strategy == "joint" and options:
        raise ValueError(f"strategy 'joint' takes no options, got {sorted(options)}")
    return STRATEGIES[strategy](**options)


# ---- gradient conflict ----------------------------------------------------------------------


def _as_loss(loss_fn: MultiTaskLoss | Mapping[str, Task]) -> MultiTaskLoss:
    if isinstance(loss_fn, MultiTaskLoss):
        return loss_fn
    if isinstance(loss_fn, Mapping) and all(isinstance(t, Task) for t in loss_fn.values()):
        return MultiTaskLoss(loss_fn)
    raise TypeError(
        f"argument 'loss_fn' is a {type(loss_fn).__name__}, expected a MultiTaskLoss or a dict "
        "of tasks"
    )


def task_gradients(
    model: nn.Module,
    batch: Batch,
    loss_fn: MultiTaskLoss | Mapping[str, Task],
    params: Iterable[nn.Parameter] | None = None,
) -> dict[str, torch.Tensor]:
    """Each task's gradient of its own (unweighted) loss on the shared parameters.

    One forward pass of the whole model (backbone once, every head), then one
    ``torch.autograd.grad`` per task back through its head and the backbone. Nothing is written
    to the parameters' ``.grad``, so it can run between training steps. The model's mode is
    used as it is (train mode in training). A parameter the task's loss does not reach gets a
    zero gradient.

    Args:
        model: the multi-task model (``{task: output}``).
        batch: ``{"image": N x 3 x H x W, task: labels, ...}``; moved to the model's device.
        loss_fn: a ``MultiTaskLoss`` or a dict of tasks (weights are not applied).
        params: the shared parameters (default ``model.shared_parameters()``, the backbone's).

    Returns:
        ``{task: g}``, each ``g`` a 1-D tensor of P entries (P shared scalars), in the tasks'
        order.
    """
    loss_fn = _as_loss(loss_fn)
    if params is None:
        if not hasattr(model, "shared_parameters"):
            raise TypeError(
                f"argument 'params' is None and the model ({type(model).__name__}) has no "
                "shared_parameters(): pass the shared parameters"
            )
        params = model.shared_parameters()
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("argument 'params' holds no trainable parameters to differentiate")
    if "image" not in batch:
        raise KeyError(f"the batch has no 'image' entry (batch keys: {tuple(batch)})")
    device = params[0].device
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    losses = loss_fn.per_task(model(batch["image"]), batch)
    grads = {}
    names = list(losses)
    for i, name in enumerate(names):
        parts = torch.autograd.grad(losses[name], params, retain_graph=i < len(names) - 1,
                                    allow_unused=True)
        grads[name] = torch.cat([
            (g if g is not None else torch.zeros_like(p)).reshape(-1)
            for g, p in zip(parts, params, strict=True)
        ])
    return grads


def cosine_matrix(grads: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Cosine similarities of the gradients: a T x T float64 tensor on the CPU, in ``grads``'
    order; entry (i, j) is ``<g_i, g_j> / (|g_i| |g_j|)``. NaN where a gradient is zero (the
    angle is undefined). Computed in float64 so that equal gradients give 1 to ~1e-15."""
    if not isinstance(grads, Mapping) or not grads:
        raise ValueError("argument 'grads' is empty, expected {task: 1-D gradient tensor}")
    flat = [g.detach().reshape(-1).double().cpu() for g in grads.values()]
    sizes = {len(g) for g in flat}
    if len(sizes) != 1:
        raise ValueError(
            f"argument 'grads' holds gradients of sizes {[len(g) for g in flat]}, expected one "
            "size (gradients on the same parameters)"
        )
    g = torch.stack(flat)  # T x P
    norms = g.norm(dim=1)
    cos = (g @ g.T) / torch.outer(norms, norms)  # zero norms give nan (0/0) or inf
    cos[(norms == 0).unsqueeze(0) | (norms == 0).unsqueeze(1)] = math.nan
    return cos.clamp(-1.0, 1.0)  # rounding can overshoot 1 by an ulp; clamp keeps nan as nan


def pair_name(a: str, b: str) -> str:
    """The key of a task pair in ``pairwise_cosines`` and ``History.conflict``: ``"a|b"``."""
    return f"{a}|{b}"


def pairwise_cosines(grads: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """``{"a|b": cosine}`` for every pair of tasks, a before b in ``grads``' order."""
    names = list(grads)
    cos = cosine_matrix(grads).tolist()
    return {pair_name(names[i], names[j]): cos[i][j]
            for i in range(len(names)) for j in range(i + 1, len(names))}


@contextmanager
def _side_effect_free(model: nn.Module) -> Iterator[None]:
    """Undo what an extra forward pass would leave behind: random draws (dropout) and buffers
    (batch-norm running statistics), so measuring does not change the training trajectory."""
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    cuda = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            with torch.no_grad():
                for buffer, saved in buffers:
                    buffer.copy_(saved)


def gradient_conflict(
    model: nn.Module, batch: Batch, loss_fn: MultiTaskLoss | Mapping[str, Task]
) -> dict[str, dict[str, float]]:
    """How the tasks' gradients on the shared parameters relate, on one batch.

    Returns plain floats: ``{"cosine": {"a|b": c, ...}, "norm": {task: |g_task|, ...}}``.
    Leaves the model, its ``.grad``, its buffers and the random state as they were.
    """
    with _side_effect_free(model):
        grads = task_gradients(model, batch, loss_fn)
    return {"cosine": pairwise_cosines(grads),
            "norm": {t: float(g.double().norm()) for t, g in grads.items()}}

