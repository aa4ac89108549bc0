"""What every multi-task architecture of the registry offers, whatever it shares.

The interface is ``MultiTaskModel``'s, so the training loop, every strategy and every weighting
method take any architecture: ``forward(x) -> {task: output}``, ``tasks``,
``shared_parameters()`` (the parameters more than one task's output depends on),
``task_parameters(task)`` (those only that task's output depends on), ``parameter_report()``
and ``architecture`` (name and options, which checkpoints record). A subclass says which
parameters belong to one task alone (``own_parameters``); every other parameter is shared, so
the shared and per-task parameters always partition the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..models import count_parameters


def no_representation(name: str, why: str) -> TypeError:
    """The error for ``source='representation'`` on an architecture without one shared
    representation that every task's output is computed from."""
    return TypeError(
        f"source='representation' needs one shared representation that every task's output is "
        f"computed from, and architecture {name!r} has none ({why}): use source='parameters' "
        "(task gradients on the shared parameters, one backward pass per task)"
    )


class ArchitectureModel(nn.Module):
    """A multi-task model: one head per task (``heads``) on whatever the architecture shares.

    Subclasses implement ``forward`` (N x 3 x H x W -> ``{task: output}``) and
    ``own_parameters``; those with one shared representation also implement
    ``shared_representation`` and ``heads_from`` (``training.gradient_source``).
    """

    name = "architecture"

    def __init__(self, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.heads = nn.ModuleDict(dict(heads))
        self.architecture: dict[str, Any] | None = None  # set by make_architecture

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.heads.keys())

    def check_task(self, task: str) -> None:
        if task not in self.heads:
            raise KeyError(f"task {task!r} is not one of this model's tasks {self.tasks}")

    def selected(self, tasks: Sequence[str] | None) -> tuple[str, ...]:
        """``tasks`` checked, or all of the model's."""
        if tasks is None:
            return self.tasks
        for t in tasks:
            self.check_task(t)
        return tuple(tasks)

    def forward_tasks(
        self, x: torch.Tensor, tasks: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """``{task: output}`` for ``tasks`` only (default: all). This default runs the whole
        model; an architecture with per-task parts overrides it to run only those of ``tasks``
        (an alternating step trains one task, ``training.strategy.forward_task``)."""
        outputs = self(x)
        return {t: outputs[t] for t in self.selected(tasks)}

    def own_parameters(self, task: str) -> list[nn.Parameter]:
        """The parameters only ``task``'s output depends on (default: its head's)."""
        return list(self.heads[task].parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        self.check_task(task)
        return self.own_parameters(task)

    def shared_parameters(self) -> list[nn.Parameter]:
        """Every parameter that no single task owns, in ``parameters()`` order."""
        owned = {id(p) for t in self.tasks for p in self.own_parameters(t)}
        return [p for p in self.parameters() if id(p) not in owned]

    def parameter_report(self) -> dict[str, int]:
        """Parameter counts: ``{"shared": n, <task>: n, ..., "total": n}``; shared plus the
        tasks' add up to the total."""
        report = {"shared": sum(p.numel() for p in self.shared_parameters() if p.requires_grad)}
        report.update({t: sum(p.numel() for p in self.own_parameters(t) if p.requires_grad)
                       for t in self.tasks})
        report["total"] = count_parameters(self)
        return report

    def representation_error(self) -> TypeError:
        """Why this architecture has no single shared representation (subclasses say)."""
        return no_representation(self.name, "its tasks share no one feature map")

    def shared_representation(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """The representation every task's output is computed from (a tensor or a tuple of
        tensors), or a ``TypeError`` saying why there is none."""
        raise self.representation_error()

    def heads_from(
        self, z: torch.Tensor | Sequence[torch.Tensor], tasks: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """``{task: output}`` from ``shared_representation``'s ``z``."""
        raise self.representation_error()
