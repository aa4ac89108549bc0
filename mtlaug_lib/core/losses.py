"""The multi-task loss: one loss per task, and their weighted total."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from .batch_format import batch_mix
from .tasks import Task


def check_weights(
    weights: Mapping[str, float] | None, tasks: Mapping[str, Task]
) -> dict[str, float]:
    """Task weights as a dict over exactly ``tasks``; ``None`` means 1 for every task.

    Weights must be finite and non-negative, with at least one positive.
    """
    if weights is None:
        return {name: 1.0 for name in tasks}
    if not isinstance(weights, Mapping):
        raise TypeError(f"argument 'weights' is a {type(weights).__name__}, expected a dict")
    if set(weights) != set(tasks):
        raise ValueError(
            f"argument 'weights' names tasks {sorted(weights)}, expected exactly {sorted(tasks)}"
        )
    out = {}
    for name in tasks:
        w = weights[name]
        if isinstance(w, torch.Tensor):
            w = float(w)
        if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ValueError(
                f"argument 'weights': the weight of task {name!r} is {w!r}, expected a finite "
                "number >= 0"
            )
        out[name] = float(w)
    if not any(out.values()):
        raise ValueError("argument 'weights': every weight is 0, so nothing would be trained")
    return out


class MultiTaskLoss:
    """Per-task losses and their weighted total.

    ``loss(outputs, batch)`` returns ``{task: loss, ..., "total": sum_t w_t * loss_t}`` (scalar
    tensors). ``outputs`` must hold exactly the declared tasks; ``batch`` must hold each task's
    labels under the task's name (other entries, such as ``image``, are ignored). A batch mixed
    by ``mixing.MixUp`` or ``CutMix`` carries ``lam`` and ``perm`` under reserved keys; the loss
    of each task that declares ``mixes`` for that kind is then mixed (see ``Task.loss``).

    Args:
        tasks: the tasks, by name.
        weights: one weight per task (default 1 each).
    """

    def __init__(self, tasks: Mapping[str, Task], weights: Mapping[str, float] | None = None):
        if not tasks:
            raise ValueError("argument 'tasks' is empty, expected at least one Task")
        self.tasks = dict(tasks)
        self.weights = check_weights(weights, self.tasks)

    def per_task(
        self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """``{task: loss}`` without the total, after checking outputs and labels."""
        unknown = [name for name in outputs if name not in self.tasks]
        if unknown:
            raise KeyError(
                f"the model gives output(s) for unknown task(s) {unknown}; this loss knows "
                f"{tuple(self.tasks)}"
            )
        losses = {}
        mix = batch_mix(batch)  # None unless MixUp or CutMix mixed the batch
        for name, task in self.tasks.items():
            if name not in outputs:
                raise KeyError(f"task {name!r} has no output in the model's dict {tuple(outputs)}")
            if name not in batch:
                raise KeyError(
                    f"task {name!r} has no labels in the batch (batch keys: {tuple(batch)})"
                )
            task.check_labels(outputs[name], batch[name])
            # A MixUp/CutMix batch: each task's declaration says whether its loss is mixed.
            task_mix = mix.for_task(task) if mix is not None else None
            losses[name] = task.loss(outputs[name], batch[name], mix=task_mix)
        return losses

    def total(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The weighted sum of per-task losses (a scalar tensor)."""
        return sum(self.weights[name] * losses[name] for name in self.tasks)

    def __call__(
        self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        losses = self.per_task(outputs, batch)
        losses["total"] = self.total(losses)
        return losses
