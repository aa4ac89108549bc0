"""MTAN, the multi-task attention network (Liu, Johns and Davison, CVPR 2019,
https://arxiv.org/abs/1803.10704): one shared backbone; per task, an attention module at each
block that produces a sigmoid mask from the shared features and multiplies them; the task's
head reads its attended features.

Simplified from the paper (which computes the mask from features inside the block, and passes
the task's previous attended map through an extra convolution and a pooling or upsampling
first): here task t's mask at block b is computed from the block's output ``f_b`` and the
task's previous attended map ``a_{b-1}`` resized to ``f_b``'s size (average pooling down,
nearest upsampling up), concatenated:

    m_b = sigmoid(conv1x1(relu(bn(conv1x1([f_b ; a_{b-1}])))))     a_b = m_b * f_b

(``[f_0]`` alone at the first block). Each mask is N x C_b x h x w in (0, 1). The chain through
``a_{b-1}`` lets a task's earlier choices steer its later ones; the shared network never sees
the masks. ``last_attention`` keeps the last forward pass's masks for figures.

No single shared representation: a task reads the shared features at every block.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..models import MultiTaskModel
from .base import ArchitectureModel, no_representation
from .blocks import run, stage


class Attention(nn.Module):
    """One task's attention at one block: N x in_channels x h x w -> a mask
    N x channels x h x w in (0, 1)."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size=1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` (N x C x h x w) at ``like``'s spatial size: average pooling to shrink, nearest
    upsampling to grow."""
    size = tuple(like.shape[2:])
    if tuple(x.shape[2:]) == size:
        return x
    if x.shape[2] > size[0]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="nearest")


class MTAN(ArchitectureModel):
    """A shared backbone with a per-task attention module after each block.

    Args:
        reference: a ``make_model`` model: its backbone (cut into blocks) is shared as it is,
            its heads kept; with every mask 1 the model computes the reference's outputs.

    Shapes: N x 3 x H x W -> ``{task: output}`` as the reference's heads give.
    """

    name = "mtan"

    def __init__(self, reference: MultiTaskModel) -> None:
        staged = stage(reference.backbone)
        super().__init__(reference.heads)
        self.blocks = staged.names
        self.prepare = staged.prepare
        self.backbone = nn.ModuleList(staged.blocks)
        channels = [b.out_channels for b in staged.blocks]
        inputs = [channels[0]] + [c + p for c, p in zip(channels[1:], channels, strict=False)]
        self.attention = nn.ModuleDict({
            t: nn.ModuleList(Attention(i, c) for i, c in zip(inputs, channels, strict=True))
            for t in self.tasks})
        self.last_attention: dict[str, dict[str, torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: N x 3 x H x W -> ``{task: output}``; the masks go to ``last_attention``
        (``{task: {block: N x C x h x w}}``, detached)."""
        return self.forward_tasks(x)

    def forward_tasks(
        self, x: torch.Tensor, tasks: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """The shared backbone, then the attention modules and heads of ``tasks`` only
        (default: all)."""
        tasks = self.selected(tasks)
        state = self.prepare(x)
        shared = []
        for block in self.backbone:
            state = run([block], state)
            shared.append(state[-1])
        outputs = {}
        for t in tasks:
            attended, masks = None, {}
            for name, f, module in zip(self.blocks, shared, self.attention[t], strict=True):
                inp = f if attended is None else torch.cat([f, resize(attended, f)], dim=1)
                mask = module(inp)
                attended = mask * f
                masks[name] = mask.detach()
            self.last_attention[t] = masks
            outputs[t] = self.heads[t](attended)
        return outputs

    def own_parameters(self, task: str) -> list[nn.Parameter]:
        return [*self.attention[task].parameters(), *self.heads[task].parameters()]

    def representation_error(self) -> TypeError:
        return no_representation(self.name, "each task reads the shared features of every "
                                            "block through its attention")
