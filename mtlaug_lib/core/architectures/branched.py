"""Hard sharing with a branch point: the backbone's first k blocks shared, the rest copied per
task, then the task's head.

``branch_point=0`` gives separate networks (one whole backbone per task), ``branch_point`` =
the number of blocks gives today's hard sharing (``make_model``'s model, the same outputs for
the same seed). The copies start as copies of the shared original (so every task starts from
the same weights); training makes them differ. For the encoder-decoder, skip features made by
shared blocks are shared (each branch reads the same tensor), those made after the branch point
are each branch's own (``blocks`` lists the blocks in order).

One shared representation for k >= 1: the state after the trunk (the trunk's last feature map
and the skips still to be merged), which every branch reads.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from ..models import MultiTaskModel
from .base import ArchitectureModel, no_representation
from .blocks import run, stage


class Branched(ArchitectureModel):
    """The backbone's blocks before ``branch_point`` shared, a copy of the others per task.

    Args:
        reference: a ``make_model`` model: its backbone is cut into blocks (the first
            ``branch_point`` used as they are, the others copied per task), its heads kept.
        branch_point: how many blocks are shared, 0 .. the backbone's number of blocks.

    Shapes: N x 3 x H x W -> ``{task: output}`` as the reference's heads give.
    """

    name = "branched"

    def __init__(self, reference: MultiTaskModel, branch_point: int) -> None:
        staged = stage(reference.backbone)
        n = len(staged.blocks)
        if isinstance(branch_point, bool) or not isinstance(branch_point, int) or not (
                0 <= branch_point <= n):
            raise ValueError(
                f"argument 'branch_point' is {branch_point!r}, expected an int in [0, {n}]: "
                f"the number of shared blocks of {', '.join(staged.names)} (0: separate "
                f"networks, {n}: the whole backbone shared)"
            )
        super().__init__(reference.heads)
        self.blocks = staged.names
        self.branch_point = branch_point
        self.prepare = staged.prepare
        self.trunk = nn.ModuleList(staged.blocks[:branch_point])
        self.branches = nn.ModuleDict({
            t: nn.ModuleList(copy.deepcopy(staged.blocks[branch_point:])) for t in self.tasks})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: N x 3 x H x W -> ``{task: output}``."""
        return self._branches(run(self.trunk, self.prepare(x)), self.tasks)

    def forward_tasks(
        self, x: torch.Tensor, tasks: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """The trunk, then only the branches of ``tasks`` (default: all)."""
        return self._branches(run(self.trunk, self.prepare(x)), self.selected(tasks))

    def _branches(self, state: list[torch.Tensor], tasks: Sequence[str]) -> dict[str, torch.Tensor]:
        return {t: self.heads[t](run(self.branches[t], state)[-1]) for t in tasks}

    def own_parameters(self, task: str) -> list[nn.Parameter]:
        return [*self.branches[task].parameters(), *self.heads[task].parameters()]

    def representation_error(self) -> TypeError:
        return no_representation(self.name, "branch_point=0: each task has its own network")

    def shared_representation(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The trunk's state: its last feature map and the skips still to be merged (k >= 1)."""
        if self.branch_point == 0:
            raise self.representation_error()
        return tuple(run(self.trunk, self.prepare(x)))

    def heads_from(
        self, z: torch.Tensor | Sequence[torch.Tensor], tasks: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        if self.branch_point == 0:
            raise self.representation_error()
        state = [z] if isinstance(z, torch.Tensor) else list(z)
        return self._branches(state, self.selected(tasks))

    def extra_repr(self) -> str:
        shared = ", ".join(self.blocks[:self.branch_point]) or "none"
        return f"branch_point={self.branch_point} (shared: {shared})"
