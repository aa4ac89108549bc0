"""Cross-stitch networks (Misra et al., CVPR 2016, https://arxiv.org/abs/1604.03539): one
column (a copy of the backbone) per task; after each block, each task's feature map is a learned
linear combination of every column's feature map at that block.

The units here are per channel: after block b, task t's map is
``sum_s alpha_b[t][s, c] * f_s[c]`` for each channel c (the paper's per-layer scalars are the
case where a row is the same for every channel). Initialised as the paper does, near identity:
0.9 for the task's own column, 0.1 / (T - 1) for each other (rows sum to 1), so training starts
from nearly separate networks and learns how much to share. The columns start as copies of one
backbone (the paper starts from one pre-trained network).

Every column's parameters reach every task (through the units), so all are shared; only the
last unit's row of a task and its head are that task's own. No single shared representation:
each task's features mix all columns at every block.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from ..models import MultiTaskModel
from .base import ArchitectureModel, no_representation
from .blocks import run, stage

SELF_WEIGHT = 0.9  # Misra et al.'s initialisation of a task's own column


class CrossStitchUnit(nn.Module):
    """Mixes T feature maps per channel: ``alpha[t]`` (T x C) gives task t's map.

    Shapes: T maps N x C x h x w -> one map N x C x h x w for a task.
    """

    def __init__(self, num_tasks: int, channels: int, self_weight: float = SELF_WEIGHT) -> None:
        super().__init__()
        other = (1.0 - self_weight) / (num_tasks - 1) if num_tasks > 1 else 0.0
        rows = []
        for t in range(num_tasks):
            row = torch.full((num_tasks, channels), other)
            row[t] = self_weight if num_tasks > 1 else 1.0
            rows.append(nn.Parameter(row))
        self.alpha = nn.ParameterList(rows)

    def mix(self, task: int, maps: list[torch.Tensor]) -> torch.Tensor:
        """Task ``task``'s map: the columns' ``maps`` (T of N x C x h x w) weighted per channel."""
        a = self.alpha[task]
        return sum(a[s].view(1, -1, 1, 1) * f for s, f in enumerate(maps))


class CrossStitch(ArchitectureModel):
    """One column per task, cross-stitched after every block.

    Args:
        reference: a ``make_model`` model: its backbone is copied into one column per task
            (cut into blocks), its heads kept.

    Shapes: N x 3 x H x W -> ``{task: output}`` as the reference's heads give.
    """

    name = "cross_stitch"

    def __init__(self, reference: MultiTaskModel) -> None:
        staged = stage(reference.backbone)
        super().__init__(reference.heads)
        self.blocks = staged.names
        self.prepare = staged.prepare
        self.columns = nn.ModuleDict({
            t: nn.ModuleList(copy.deepcopy(staged.blocks)) for t in self.tasks})
        self.stitches = nn.ModuleList(
            CrossStitchUnit(len(self.tasks), b.out_channels) for b in staged.blocks)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: N x 3 x H x W -> ``{task: output}``."""
        return self.forward_tasks(x)

    def forward_tasks(
        self, x: torch.Tensor, tasks: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Every column (each task's features mix them all), then the heads of ``tasks`` only
        (default: all)."""
        wanted = self.selected(tasks)
        first = self.prepare(x)
        states = [list(first) for _ in self.tasks]
        for b, unit in enumerate(self.stitches):
            states = [run([self.columns[t][b]], s) for t, s in zip(self.tasks, states,
                                                                  strict=True)]
            maps = [s[-1] for s in states]
            for i, s in enumerate(states):  # skips were stitched when their block made them
                s[-1] = unit.mix(i, maps)
        last = dict(zip(self.tasks, states, strict=True))
        return {t: self.heads[t](last[t][-1]) for t in wanted}

    def own_parameters(self, task: str) -> list[nn.Parameter]:
        # The last unit's row for a task feeds that task's head alone.
        last = self.stitches[-1].alpha[self.tasks.index(task)]
        return [last, *self.heads[task].parameters()]

    def representation_error(self) -> TypeError:
        return no_representation(self.name, "each task's features mix every task's column at "
                                            "every block")
