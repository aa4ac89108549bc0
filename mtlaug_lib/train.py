"""One training loop for the whole course, with pluggable update strategies.

``train`` owns what every run needs: moving batches to the device, the learning-rate schedule,
counting work (images, forward and backward passes through the shared backbone), per-step
losses, periodic evaluation, a progress bar, checkpoints and resuming. *How* a batch updates
the model is a ``Strategy``: ``Joint`` (weighted sum of the task losses, one backward, one
step) here; alternating updates and gradient-combination methods are further strategies with
the same ``step`` method, so they plug in without touching the loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .losses import MultiTaskLoss
from .tasks import Task

Batch = Mapping[str, torch.Tensor]


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
    """What one strategy step did: per-task losses (floats) and the work it took."""

    losses: dict[str, float]
    forward: int  # forward passes through the shared backbone
    backward: int  # backward passes through the shared backbone
    images: int  # images that went through the backbone (forward), all passes counted


class Strategy:
    """How one batch updates the model. Subclasses implement ``step``."""

    name = "strategy"

    def step(
        self,
        model: nn.Module,
        batch: Batch,
        loss_fn: MultiTaskLoss,
        optimizer: torch.optim.Optimizer,
        step: int,
    ) -> StepStats:
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
    optimizer step. Every task's gradient reaches the shared backbone in the same update."""

    name = "joint"

    def step(self, model, batch, loss_fn, optimizer, step):  # noqa: D102 (see Strategy.step)
        outputs = model(batch["image"])
        losses = loss_fn.per_task(outputs, batch)
        floats = check_finite(losses, step)
        optimizer.zero_grad(set_to_none=True)
        loss_fn.total(losses).backward()
        optimizer.step()
        return StepStats(floats, forward=1, backward=1, images=len(batch["image"]))


STRATEGIES: dict[str, Callable[[], Strategy]] = {"joint": Joint}


def make_strategy(strategy: str | Strategy) -> Strategy:
    """A ``Strategy`` from its name (``"joint"``) or as given."""
    if isinstance(strategy, Strategy):
        return strategy
    if strategy not in STRATEGIES:
        raise ValueError(
            f"argument 'strategy' is {strategy!r}, expected one of {tuple(STRATEGIES)} or a "
            "Strategy instance"
        )
    return STRATEGIES[strategy]()


@dataclass
class History:
    """What a run did and measured.

    Counters cover the training steps only (evaluation excluded): ``steps``, ``epochs``,
    ``images`` (through the backbone), ``forward`` and ``backward`` (passes through the
    backbone) and ``seconds`` (wall time). ``train_loss[task]`` has one float per step.
    ``evals`` has one record per evaluation: the counters at that moment and
    ``test[task][metric]``.
    """

    tasks: list[str]
    steps: int = 0
    epochs: int = 0
    images: int = 0
    forward: int = 0
    backward: int = 0
    seconds: float = 0.0
    train_loss: dict[str, list[float]] = field(default_factory=dict)
    evals: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for t in self.tasks:
            self.train_loss.setdefault(t, [])

    def record_step(self, stats: StepStats, seconds: float) -> None:
        self.steps += 1
        self.images += stats.images
        self.forward += stats.forward
        self.backward += stats.backward
        self.seconds += seconds
        for t, v in stats.losses.items():
            self.train_loss[t].append(v)

    def record_eval(self, metrics: dict[str, dict[str, float]]) -> None:
        counters = {k: getattr(self, k) for k in ("steps", "epochs", "images", "forward",
                                                  "backward", "seconds")}
        self.evals.append({**counters, "test": metrics})

    def final(self) -> dict[str, dict[str, float]]:
        """The last evaluation's metrics, ``{task: {metric: value}}``."""
        if not self.evals:
            raise ValueError("this history has no evaluation (train with a test loader)")
        return self.evals[-1]["test"]

    def curve(self, task: str, metric: str, x: str = "steps") -> tuple[list[float], list[float]]:
        """``(x values, metric values)`` of ``task`` over the evaluations, for plotting."""
        if task not in self.tasks:
            raise KeyError(f"task {task!r} is not one of this run's tasks {self.tasks}")
        return [e[x] for e in self.evals], [e["test"][task][metric] for e in self.evals]

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values only, so checkpoints load with ``weights_only=True``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> History:
        return cls(**dict(state))


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: Iterable[Batch], tasks: Mapping[str, Task]
) -> dict[str, dict[str, float]]:
    """Loss and metrics of every task on ``loader``: ``{task: {metric: value}}``.

    The model is put in eval mode for the pass and restored to its mode afterwards.
    """
    device = next(model.parameters()).device
    meters = {name: task.meter() for name, task in tasks.items()}
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            outputs = model(batch["image"])
            for name, task in tasks.items():
                task.check_labels(outputs[name], batch[name])
                loss = task.loss(outputs[name], batch[name])
                meters[name].update(outputs[name], batch[name], loss)
    finally:
        model.train(was_training)
    return {name: meter.compute() for name, meter in meters.items()}


def _check_model_tasks(model: nn.Module, tasks: Mapping[str, Task]) -> None:
    model_tasks = getattr(model, "tasks", None)
    if model_tasks is not None and set(model_tasks) != set(tasks):
        raise ValueError(
            f"the model has heads for {tuple(model_tasks)}, but 'tasks' names {tuple(tasks)}"
        )


def _make_scheduler(
    schedule: str | Callable | None, optimizer: torch.optim.Optimizer, lr: float, total: int
) -> Any:
    if schedule is None:
        return None
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total)
    if callable(schedule):
        return schedule(optimizer, total)
    raise ValueError(
        f"argument 'schedule' is {schedule!r}, expected 'onecycle', None, or a callable "
        "(optimizer, total_steps) -> scheduler"
    )


def train(
    model: nn.Module,
    tasks: Mapping[str, Task],
    train_iter: Iterable[Batch],
    test_iter: Iterable[Batch] | None = None,
    *,
    epochs: int,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    schedule: str | Callable | None = "onecycle",
    strategy: str | Strategy = "joint",
    weights: Mapping[str, float] | None = None,
    eval_every: int | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    on_epoch_end: Callable[[History], None] | None = None,
    progress: bool = True,
    desc: str = "training",
) -> History:
    """Train ``model`` on ``tasks``; return the run's ``History``.

    Args:
        model: returns ``{task: output}``; it stays on its device, batches are moved to it.
        tasks: the tasks to train, by name (the model must have a head for each).
        train_iter: yields batches ``{"image": B x 3 x H x W, task: labels, ...}``; if it has
            ``set_epoch`` (as ``TensorLoader``), each epoch's order depends on the epoch only.
        test_iter: evaluated after each epoch and every ``eval_every`` steps.
        epochs: passes over ``train_iter``.
        lr: the learning rate (the peak of the one-cycle schedule).
        optimizer: default Adam over all of the model's parameters.
        schedule: ``"onecycle"`` (stepped every batch), ``None``, or a callable
            ``(optimizer, total_steps) -> scheduler``.
        strategy: how a batch updates the model (``"joint"`` or a ``Strategy``).
        weights: per-task loss weights (default 1 each).
        checkpoint: a file written atomically after every epoch.
        resume: continue from ``checkpoint`` if it exists (same weights as an uninterrupted
            run, on the CPU).
        on_epoch_end: called with the history after each epoch's checkpoint.
        progress: show a tqdm progress bar.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"argument 'epochs' is {epochs!r}, expected a positive integer")
    if eval_every is not None and (not isinstance(eval_every, int) or eval_every < 1):
        raise ValueError(f"argument 'eval_every' is {eval_every!r}, expected a positive integer")
    if resume and checkpoint is None:
        raise ValueError("argument 'resume' is True, but no 'checkpoint' file was given")
    _check_model_tasks(model, tasks)
    loss_fn = MultiTaskLoss(tasks, weights)
    strategy = make_strategy(strategy)
    device = next(model.parameters()).device
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = len(train_iter)  # type: ignore[arg-type]
    scheduler = _make_scheduler(schedule, optimizer, lr, epochs * steps_per_epoch)

    history = History(tasks=list(tasks))
    if resume and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, model, optimizer, scheduler)
        history = History.from_dict(state["history"])
        strategy.load_state_dict(state["extra"].get("strategy", {}))

    bar = tqdm(total=epochs * steps_per_epoch, initial=history.steps, desc=desc,
               disable=not progress, leave=False)
    model.train()
    for epoch in range(history.epochs, epochs):
        if hasattr(train_iter, "set_epoch"):
            train_iter.set_epoch(epoch)
        for batch in train_iter:
            start = time.perf_counter()
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            stats = strategy.step(model, batch, loss_fn, optimizer, history.steps)
            if scheduler is not None:
                scheduler.step()
            history.record_step(stats, time.perf_counter() - start)
            bar.update(1)
            if history.steps % 10 == 0:
                bar.set_postfix(loss=f"{sum(stats.losses.values()):.3f}")
            if eval_every and test_iter is not None and history.steps % eval_every == 0:
                history.record_eval(evaluate(model, test_iter, tasks))
        history.epochs = epoch + 1
        evaluated_now = bool(history.evals) and history.evals[-1]["steps"] == history.steps
        if test_iter is not None and not evaluated_now:
            history.record_eval(evaluate(model, test_iter, tasks))
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, scheduler, history.to_dict(),
                            extra={"strategy": strategy.state_dict()})
        if on_epoch_end is not None:
            on_epoch_end(history)
    bar.close()
    return history
