"""One training loop for the whole course, with pluggable update strategies.

``train`` owns what every run needs: moving batches to the device, the learning-rate schedule,
counting work (images, forward and backward passes through the shared backbone), per-step
losses, periodic evaluation, a progress bar, checkpoints and resuming. *How* a batch updates
the model is a ``Strategy`` (``strategy``; joint, alternating and sequential in ``strategies``,
the weighting methods through ``weighting.Weighted``, any of them by name through
``registry.make_strategy``), so strategies plug in without touching the loop. The loop also
builds the optimizers a strategy asks for (``optimizers``: one shared, or one per task) and can
record the gradient conflict between tasks every few steps (``conflict``). Under ``torchrun``
the same loop trains data-parallel (``distributed``: each process its shard of every batch).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..core.checkpoint import load_checkpoint, save_checkpoint
from ..core.checks import check_positive_int
from ..core.losses import MultiTaskLoss
from ..core.tasks import Task
from . import distributed
from .conflict import gradient_conflict, pair_name
from .optimizers import OptimizerSpec, TaskOptimizers, TaskSchedulers, make_optimizers
from .precision import Precision, active
from .registry import make_strategy
from .strategy import Batch, StepStats, Strategy


@dataclass
class History:
    """What a run did and measured.

    Counters cover the training steps only (evaluation and conflict measurement excluded):
    ``steps``, ``epochs``, ``images`` (through the backbone), ``forward`` and ``backward``
    (passes through the backbone), ``task_images[task]`` (images that task's loss was computed
    and trained on) and ``seconds`` (wall time of the steps, fetching their batches included).

    ``train_loss[task]`` has one float per step that computed that task's loss (every step for
    joint training, that task's steps for alternating), and ``loss_steps[task]`` the 0-based
    steps they come from (``loss_curve`` gives both). ``evals`` has one record per evaluation:
    the counters at that moment and ``test[task][metric]``. ``conflict`` has one record per
    gradient-conflict measurement (``train(..., conflict_every=k)``): ``{"step": s, "cosine":
    {"a|b": c, ...}, "norm": {task: |g|, ...}}``, measured on step s's batch at the weights that
    step starts from; ``conflict_seconds`` is the time they took (not in ``seconds``).
    ``weights`` has one record per step of a strategy that sets task weights (a weighting
    method, ``train(..., strategy="mgda")``): ``{"step": s, "weights": {task: w, ...}}``;
    ``weight_curve`` gives one task's.

    Plain Python values only, so a checkpoint holding ``to_dict()`` loads with
    ``weights_only=True``; ``from_dict`` also reads histories saved before the newer fields.
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
    task_images: dict[str, int] = field(default_factory=dict)
    loss_steps: dict[str, list[int]] = field(default_factory=dict)
    conflict: list[dict[str, Any]] = field(default_factory=list)
    conflict_seconds: float = 0.0
    weights: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for t in self.tasks:
            self.train_loss.setdefault(t, [])
            self.task_images.setdefault(t, 0)
            # A history saved before loss_steps existed came from joint training: every step.
            self.loss_steps.setdefault(t, list(range(len(self.train_loss[t]))))

    def record_step(self, stats: StepStats, seconds: float) -> None:
        for t, v in stats.losses.items():
            self.train_loss[t].append(v)
            self.loss_steps[t].append(self.steps)
        for t, n in stats.seen.items():
            self.task_images[t] += n
        if stats.weights is not None:
            self.weights.append({"step": self.steps, "weights": dict(stats.weights)})
        self.steps += 1
        self.images += stats.images
        self.forward += stats.forward
        self.backward += stats.backward
        self.seconds += seconds

    def record_eval(self, metrics: dict[str, dict[str, float]]) -> None:
        counters = {k: getattr(self, k) for k in ("steps", "epochs", "images", "forward",
                                                  "backward", "seconds")}
        self.evals.append({**counters, "task_images": dict(self.task_images), "test": metrics})

    def record_conflict(self, step: int, record: Mapping[str, Any], seconds: float) -> None:
        self.conflict.append({"step": step, **record})
        self.conflict_seconds += seconds

    def final(self) -> dict[str, dict[str, float]]:
        """The last evaluation's metrics, ``{task: {metric: value}}``."""
        if not self.evals:
            raise ValueError("this history has no evaluation (train with a test loader)")
        return self.evals[-1]["test"]

    def _check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise KeyError(f"task {task!r} is not one of this run's tasks {self.tasks}")

    def curve(self, task: str, metric: str, x: str = "steps") -> tuple[list[float], list[float]]:
        """``(x values, metric values)`` of ``task`` over the evaluations, for plotting.

        ``x`` is a counter (``"steps"``, ``"images"``, ``"forward"``, ``"backward"``,
        ``"seconds"``, ``"epochs"``) or ``"task_images"``: the images ``task`` itself has seen
        (the fair axis to compare joint and alternating training on).
        """
        self._check_task(task)
        if x == "task_images":
            return [e["task_images"][task] for e in self.evals], [
                e["test"][task][metric] for e in self.evals]
        return [e[x] for e in self.evals], [e["test"][task][metric] for e in self.evals]

    def loss_curve(self, task: str) -> tuple[list[int], list[float]]:
        """``(steps, training losses)`` of ``task``: the steps that computed its loss."""
        self._check_task(task)
        return list(self.loss_steps[task]), list(self.train_loss[task])

    def conflict_curve(self, a: str, b: str) -> tuple[list[int], list[float]]:
        """``(steps, cosine similarities)`` of tasks ``a`` and ``b``'s gradients on the shared
        parameters over training (either order)."""
        self._check_task(a)
        self._check_task(b)
        if a == b:
            raise ValueError(f"arguments 'a' and 'b' are both {a!r}, expected two tasks")
        key = pair_name(a, b) if self.tasks.index(a) < self.tasks.index(b) else pair_name(b, a)
        return [r["step"] for r in self.conflict], [r["cosine"][key] for r in self.conflict]

    def weight_curve(self, task: str) -> tuple[list[int], list[float]]:
        """``(steps, weights)`` of ``task`` over training (strategies that set task weights)."""
        self._check_task(task)
        return [r["step"] for r in self.weights], [r["weights"][task] for r in self.weights]

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

    Under torchrun (a process group), process r of W evaluates the batches r, r + W, ... and
    the meters (sums and counts) are summed over the processes: every process gets the whole
    set's metrics, equal to one process's up to the order of float sums, for 1/W of the work.
    """
    device = next(model.parameters()).device
    meters = {name: task.meter() for name, task in tasks.items()}
    was_training = model.training
    model.eval()
    sharded = distributed.is_distributed()
    rank, size = distributed.rank(), distributed.world_size()
    try:
        for i, batch in enumerate(loader):
            if sharded and i % size != rank:
                continue  # another process's batch
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            outputs = model(batch["image"])
            for name, task in tasks.items():
                task.check_labels(outputs[name], batch[name])
                loss = task.loss(outputs[name], batch[name])
                meters[name].update(outputs[name], batch[name], loss)
    finally:
        model.train(was_training)
    if sharded:
        distributed.sum_meters(meters)
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


def _make_schedulers(
    schedule: str | Callable | None,
    optimizer: torch.optim.Optimizer | TaskOptimizers,
    lr: float,
    total: int,
) -> Any:
    """One scheduler, or one per task's optimizer (``TaskSchedulers``), or None."""
    if isinstance(optimizer, TaskOptimizers) and schedule is not None:
        return TaskSchedulers({t: _make_scheduler(schedule, o, lr, total)
                               for t, o in optimizer.items()})
    return _make_scheduler(schedule, optimizer, lr, total)


class _SharedOptimizerState:
    """A shared optimizer as checkpoint loading sees it: refuses per-task states by name
    (instead of torch's ``KeyError: 'param_groups'``)."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not (isinstance(state, Mapping) and "param_groups" in state and "state" in state):
            keys = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(
                f"the checkpoint holds per-task optimizer states ({keys}), but this run uses "
                "one shared optimizer: resume with the strategy's optimizers='per_task'"
            )
        self.optimizer.load_state_dict(state)


def _check_positive_int_or_none(name: str, value: object) -> None:
    if value is not None:
        check_positive_int(name, value)


def _global_stats(stats: StepStats, seconds: float) -> float:
    """Make a process's ``stats`` the global batch's, in place, with one all-reduce of T + 1
    floats: the losses averaged (equal shards: the global batch's mean losses), the images
    counted over every process; returns the step's seconds averaged over the processes, so the
    history is the same on every process."""
    names = list(stats.losses)
    local = torch.tensor([*stats.losses.values(), seconds], dtype=torch.float64)
    values = distributed.average(local).tolist()
    stats.losses = dict(zip(names, values[:-1], strict=True))
    size = distributed.world_size()
    stats.images *= size
    stats.seen = {t: n * size for t, n in (stats.seen or {}).items()}
    return values[-1]


def train(
    model: nn.Module,
    tasks: Mapping[str, Task],
    train_iter: Iterable[Batch],
    test_iter: Iterable[Batch] | None = None,
    *,
    epochs: int,
    lr: float = 1e-3,
    optimizer: OptimizerSpec = None,
    schedule: str | Callable | None = "onecycle",
    strategy: str | Strategy = "joint",
    weights: Mapping[str, float] | None = None,
    augment: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    eval_every: int | None = None,
    conflict_every: int | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    on_epoch_end: Callable[[History], None] | None = None,
    progress: bool = True,
    desc: str = "training",
    precision: str | Precision = "fp32",
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
        optimizer: default Adam over all of the model's parameters (with
            ``optimizers="per_task"`` strategies: one Adam per task over the backbone and that
            task's head). Also: an optimizer instance (shared), a dict ``{task: optimizer}``
            (per task), or a factory ``params -> optimizer`` (either); see ``make_optimizers``.
        schedule: ``"onecycle"`` (stepped every batch), ``None``, or a callable
            ``(optimizer, total_steps) -> scheduler``; with per-task optimizers, one scheduler
            each, all stepped every batch.
        strategy: how a batch updates the model: ``"joint"``, ``"alternating"``,
            ``"alternating-random"``, ``"sequential"``, a weighting method's name (``"mgda"``,
            ``"pcgrad"``, ...: ``weighting.WEIGHTING_METHODS``), or a ``Strategy`` (for
            options, such as ``Alternating(optimizers="per_task")`` or ``Weighted("mgda",
            source="parameters")``).
        weights: per-task loss weights (default 1 each).
        augment: applied to each training batch on the device, before the update (batch
            augmentation of the image and all its targets together); never to test batches.
        eval_every: also evaluate every this many steps, counted from the start of training
            (not of each epoch). Choose a divisor of the batches per epoch: otherwise a
            periodic evaluation can fall a step or two after an epoch's end, which is
            evaluated too, and the curves get two points close together.
        conflict_every: every this many steps (from step 0), record the cosine similarity of
            the tasks' gradients on the shared parameters in ``history.conflict``, on that
            step's batch before its update. Measured outside the step's time and without
            changing the training (see ``gradient_conflict``).
        checkpoint: a file written atomically after every epoch.
        resume: continue from ``checkpoint`` if it exists (same weights as an uninterrupted
            run, on the CPU).
        on_epoch_end: called with the history after each epoch's checkpoint.
        progress: show a tqdm progress bar.
        desc: the progress bar's label.
        precision: ``"fp32"`` (default), ``"bf16"`` (the forward pass under bfloat16 autocast,
            CPU or GPU) or ``"fp16"`` (float16 autocast with dynamic loss scaling, CUDA only;
            an update whose gradients overflow is skipped, for every strategy and method),
            or a ``precision.Precision``. Parameters and optimizer states stay float32.

    Under ``torchrun --nproc-per-node N`` (a process group initialised before the call, gloo
    on a CPU or nccl on CUDA; ``train`` never starts one), the loader yields the global
    batches, as in one process, and each process trains on its contiguous slice (``1/N`` of
    each; a global batch must divide by N). Joint training and the loss-based methods run in
    DistributedDataParallel; alternating and sequential steps and the gradient methods
    average, in one bucket, exactly the gradients their step made (see ``strategies`` and
    ``weighting.Weighted``). Evaluation is sharded by batch and reduced (``evaluate``); the
    history (losses of the global batch, task weights, images of all processes, mean step
    time) is the same on every process; only rank 0 shows progress and writes checkpoints.
    Batch augmentation draws on each process for its own shard, and a backbone with batch
    norm normalises each shard by its own statistics (neither equals one process exactly).
    ``conflict_every`` is refused.
    """
    check_positive_int("epochs", epochs)
    _check_positive_int_or_none("eval_every", eval_every)
    _check_positive_int_or_none("conflict_every", conflict_every)
    if conflict_every is not None and len(tasks) < 2:
        raise ValueError(
            f"argument 'conflict_every' is {conflict_every}, but there is only one task "
            f"{tuple(tasks)}: gradient conflict needs two tasks or more"
        )
    if resume and checkpoint is None:
        raise ValueError("argument 'resume' is True, but no 'checkpoint' file was given")
    sharded = distributed.is_distributed()
    if sharded and conflict_every is not None:
        raise ValueError(
            f"argument 'conflict_every' is {conflict_every}, but this run is distributed over "
            f"{distributed.world_size()} processes and the conflict measurement is not: "
            "measure it in a single process (conflict_every=None here)"
        )
    _check_model_tasks(model, tasks)
    loss_fn = MultiTaskLoss(tasks, weights)
    strategy = make_strategy(strategy)
    strategy.setup(loss_fn)
    device = next(model.parameters()).device
    numerics = precision if isinstance(precision, Precision) else Precision(precision, device)
    try:
        steps_per_epoch = len(train_iter)  # type: ignore[arg-type]
    except TypeError:
        steps_per_epoch = 0
    if steps_per_epoch < 1:
        raise ValueError(
            f"argument 'train_iter' ({type(train_iter).__name__}) has no batches or no len(), "
            "expected a loader with at least one batch (such as TensorLoader or DataLoader)"
        )
    optimizer = make_optimizers(model, list(tasks), strategy.optimizers, optimizer, lr)
    total_steps = epochs * steps_per_epoch
    scheduler = _make_schedulers(schedule, optimizer, lr, total_steps)

    history = History(tasks=list(tasks))
    if resume and Path(checkpoint).is_file():
        saved = optimizer if isinstance(optimizer, TaskOptimizers) else _SharedOptimizerState(
            optimizer)
        state = load_checkpoint(checkpoint, model, saved, scheduler)
        history = History.from_dict(state["history"])
        strategy.load_state_dict(state["extra"].get("strategy", {}))
        # a checkpoint from before precisions existed was trained in fp32
        numerics.load_state_dict(state["extra"].get("precision", {"precision": "fp32"}))
        planned = getattr(scheduler, "total_steps", total_steps)  # OneCycleLR's, as saved
        if history.steps != history.epochs * steps_per_epoch or planned != total_steps:
            raise ValueError(
                f"checkpoint {checkpoint} comes from a run of {history.steps} steps in "
                f"{history.epochs} epoch(s) with a schedule of {planned} steps; this run has "
                f"{steps_per_epoch} batches an epoch and {total_steps} steps in all: resume "
                "with the same data, batch size and epochs"
            )

    # At most one redraw a second: in Jupyter each redraw is a widget message, and a burst of
    # them can overflow the kernel's output queue while a test runner is not reading it.
    bar = tqdm(total=total_steps, initial=history.steps, desc=desc,
               disable=not progress or not distributed.is_main(), leave=False, mininterval=1.0)
    step_model = model
    if sharded:
        # Identical replicas from the start (DDP broadcasts them too, but a strategy that
        # reduces its own gradients gets the bare model).
        distributed.broadcast_parameters(model)
        if strategy.ddp:
            step_model = distributed.wrap_ddp(model)
    model.train()
    try:
        for epoch in range(history.epochs, epochs):
            if hasattr(train_iter, "set_epoch"):
                train_iter.set_epoch(epoch)
            start = time.perf_counter()  # a step's time includes fetching its batch
            for batch in train_iter:
                if sharded:
                    batch = distributed.shard(batch, history.steps)
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                if augment is not None:
                    batch = augment(batch)
                measuring = 0.0  # seconds spent on the conflict measurement, not on the step
                if conflict_every and history.steps % conflict_every == 0:
                    t0 = time.perf_counter()
                    record = gradient_conflict(model, batch, loss_fn)
                    measuring = time.perf_counter() - t0
                    history.record_conflict(history.steps, record, measuring)
                with active(numerics), numerics.autocast():
                    stats = strategy.step(step_model, batch, loss_fn, optimizer, history.steps)
                numerics.end_step()
                if scheduler is not None:
                    scheduler.step()
                seconds = time.perf_counter() - start - measuring
                if sharded:
                    seconds = _global_stats(stats, seconds)
                history.record_step(stats, seconds)
                bar.update(1)
                if history.steps % 10 == 0:
                    bar.set_postfix(loss=f"{sum(stats.losses.values()):.3f}", refresh=False)
                if eval_every and test_iter is not None and history.steps % eval_every == 0:
                    history.record_eval(evaluate(model, test_iter, tasks))
                start = time.perf_counter()
            history.epochs = epoch + 1
            evaluated_now = bool(history.evals) and history.evals[-1]["steps"] == history.steps
            if test_iter is not None and not evaluated_now:
                history.record_eval(evaluate(model, test_iter, tasks))
            if checkpoint is not None and distributed.is_main():
                save_checkpoint(checkpoint, model, optimizer, scheduler, history.to_dict(),
                                extra={"strategy": strategy.state_dict(),
                                       "precision": numerics.state_dict()})
            if checkpoint is not None and sharded:
                distributed.barrier()  # written before any process goes on (or resumes)
            if on_epoch_end is not None:
                on_epoch_end(history)
    finally:
        bar.close()
    return history
