"""Multi-gate mixture of experts (MMoE; Ma et al., KDD 2018,
https://dl.acm.org/doi/10.1145/3219819.3220007): E expert backbones shared by all tasks; per
task, a softmax gate over the experts; the task's representation is the gated sum of the
experts' features, read by its head.

Why this one beside branch points, cross-stitch and MTAN: it is the common choice outside vision
(recommendation systems, where it was introduced), and it answers "what to share" differently:
softly and per input, every task using every expert in proportions it learns for each image.

Choices made here:

- Experts are smaller than the hard-sharing backbone so that compute stays comparable: with the
  encoder-decoder, E = 4 experts of width w / 2 by default (a convolution's cost grows with the
  square of the width, so four half-width experts cost about one full-width backbone); the
  heads read w / 2 channels. With the article's backbone the experts are the article's
  ``FeatureExtractor`` (its heads need 64 x 7 x 7 features), E = 2 by default: twice the
  backbone's compute.
- The gates read the experts' globally pooled features (the paper's gates read the input; the
  pooled pixels of an image say little, and gating on the experts' output keeps every task a
  function of the stacked expert features alone, which is then one honest shared representation
  for representation gradients). Gate t: ``softmax(W_t [mean_hw f_1; ...; mean_hw f_E] + b_t)``,
  initialised at zero, so training starts from the plain average of the experts.
- ``last_gates`` keeps the last forward pass's gate weights (``{task: N x E}``) for figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import ArchitectureModel


class MMoE(ArchitectureModel):
    """E experts, one softmax gate and one head per task.

    Args:
        experts: the expert backbones, each N x 3 x H x W -> N x C x h x w (the same C x h x w).
        heads: ``{task: head}``, each reading N x C x h x w.
        channels: C, the experts' output channels (the gates' inputs are E * C).

    Shapes: N x 3 x H x W -> ``{task: output}``; ``shared_representation``: E x N x C x h x w.
    """

    name = "mmoe"

    def __init__(self, experts: Sequence[nn.Module], heads: dict[str, nn.Module],
                 channels: int) -> None:
        super().__init__(heads)
        self.experts = nn.ModuleList(experts)
        n = len(self.experts)
        self.gates = nn.ModuleDict({t: nn.Linear(n * channels, n) for t in self.tasks})
        for gate in self.gates.values():  # uniform gates at the start: the experts' average
            nn.init.zeros_(gate.weight)
            nn.init.zeros_(gate.bias)
        self.last_gates: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: N x 3 x H x W -> ``{task: output}``; the gates go to ``last_gates``."""
        return self.heads_from(self.shared_representation(x))

    def forward_tasks(
        self, x: torch.Tensor, tasks: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """The experts, then the gates and heads of ``tasks`` only (default: all)."""
        return self.heads_from(self.shared_representation(x), self.selected(tasks))

    def shared_representation(self, x: torch.Tensor) -> torch.Tensor:
        """The experts' features stacked: E x N x C x h x w."""
        return torch.stack([expert(x) for expert in self.experts])

    def heads_from(
        self, z: torch.Tensor | Sequence[torch.Tensor], tasks: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """``{task: head(sum_e gate_e * z[e])}`` from the stacked expert features ``z``."""
        if not isinstance(z, torch.Tensor):
            (z,) = z
        pooled = z.mean(dim=(3, 4)).transpose(0, 1).reshape(z.shape[1], -1)  # N x (E * C)
        outputs = {}
        for t in self.selected(tasks):
            gates = torch.softmax(self.gates[t](pooled), dim=1)  # N x E, rows sum to 1
            self.last_gates[t] = gates.detach()
            mixed = (gates.t()[:, :, None, None, None] * z).sum(dim=0)  # N x C x h x w
            outputs[t] = self.heads[t](mixed)
        return outputs

    def own_parameters(self, task: str) -> list[nn.Parameter]:
        return [*self.gates[task].parameters(), *self.heads[task].parameters()]
