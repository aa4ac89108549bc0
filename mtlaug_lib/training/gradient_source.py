"""The gradient source: where the tasks' gradients on the shared part of a model are taken.

A gradient-based weighting method needs, at each step, the gradient of every task's loss on the
part of the model the tasks share (a T x D matrix ``G``, one row per task), and then puts one
combined direction ``d`` (D) back. Where those gradients are taken is a choice of its own, the
same for every method, and the conflict measurement takes them the same way:

- ``RepresentationSource`` (``"representation"``): on the shared features ``z = backbone(x)``
  (B x C x H x W, flattened over the batch: D = B * C * H * W, B * 3136 for the course's
  backbone; for another architecture, its ``shared_representation``, if it has one). One
  forward pass, T cheap backward passes through the heads, then *one* backward pass through
  the backbone with the combined gradient, ``z.backward(d)``: Sener & Koltun's
  MGDA-UB trick (the minimum-norm weights of the representation gradients bound those of the
  parameters').
- ``ParameterSource`` (``"parameters"``): on the shared (backbone) parameters, D = their count:
  one backward pass through the backbone per task (T in all); the combined gradient is written
  to the parameters' ``.grad``. The exact methods as published; ``conflict.task_gradients``
  measures these gradients.

One step: ``shared = source.forward(model, images, tasks)`` runs the one forward pass
(``shared.outputs`` is ``{task: output}``), ``source.task_gradients(shared, losses, heads)``
gives ``G`` (and each head's own gradients where asked), ``source.apply(shared, d)`` puts the
direction back, and ``source.backward_passes(T)`` says what that cost.

Why one small class per source, not one class with a mode: the sources differ in exactly three
places (what the forward pass keeps, how the direction goes back, how many backward passes
through the backbone that costs) and agree on the per-task gradient code. A subclass puts each
difference in one method, so neither ``Weighted`` nor the conflict measurement ever branches on
the source, and a new source (the last shared layer only, or gradients gathered across devices)
is one subclass and one ``GRADIENT_SOURCES`` entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..core.checks import check_choice


@dataclass
class SharedPass:
    """One forward pass as a gradient source ran it.

    Attributes:
        outputs: ``{task: output}`` (N x C, or N x C x H x W for dense tasks).
        shared: what the task gradients are taken on: the representation's tensors (the
            features N x C x H x W, as detached leaves) or the trainable shared parameters.
        trunk: for a representation, its tensors as the shared part computed them (with their
            graph), which ``apply`` backpropagates through; empty otherwise.
    """

    outputs: dict[str, torch.Tensor]
    shared: list[torch.Tensor]
    trunk: list[torch.Tensor] = field(default_factory=list)


@dataclass
class TaskGradients:
    """The tasks' gradients from one forward pass.

    Attributes:
        matrix: T x D, row t the gradient of task t's loss on the shared part (zeros where the
            loss does not reach), in the order of the losses.
        heads: per task, ``[(parameter, gradient or None), ...]`` of that task's own head
            parameters (empty lists where the heads were not asked for).
    """

    matrix: torch.Tensor
    heads: list[list[tuple[nn.Parameter, torch.Tensor | None]]]

    def write_heads(self, weights: Sequence[float]) -> None:
        """Set each head parameter's ``.grad`` to its task's gradient times that task's weight
        (``weights``: T floats). A parameter its loss does not reach keeps ``.grad`` as is."""
        for w, pairs in zip(weights, self.heads, strict=True):
            for p, g in pairs:
                if g is not None:
                    p.grad = g * w if w != 1.0 else g


class GradientSource:
    """Where the task gradients are taken (base class). Subclasses implement ``forward``,
    ``apply`` and ``backward_passes``; ``task_gradients`` is shared."""

    name = "source"
    keep_graph = False  # True if apply() backpropagates through the forward pass's graph
    # True if G's columns are per-sample coordinates (a shard's rows are a slice of the global
    # batch's G, so the global Gram matrix is a sum of the shards'); False if each row is a
    # gradient of the whole shared part (the global G is the mean of the shards').
    per_sample = False

    def forward(self, model: nn.Module, images: torch.Tensor, tasks: Sequence[str]) -> SharedPass:
        """Run the one forward pass of ``images`` (N x 3 x H x W) for ``tasks``."""
        raise NotImplementedError

    def task_gradients(
        self,
        shared_pass: SharedPass,
        losses: Mapping[str, torch.Tensor],
        heads: Mapping[str, Sequence[nn.Parameter]] | None = None,
    ) -> TaskGradients:
        """Each task's gradient of its loss (``losses``: ``{task: scalar}`` from
        ``shared_pass.outputs``) on the shared part: one ``torch.autograd.grad`` per task, in
        the losses' order. With ``heads`` (``{task: that head's trainable parameters}``), the
        same call also gives each head's own gradient. Nothing is written to ``.grad``."""
        shared = shared_pass.shared
        names = list(losses)
        rows, head_grads = [], []
        for i, name in enumerate(names):
            own = list(heads[name]) if heads is not None else []
            # The graph is kept for the next task, and after the last one if apply() needs it.
            parts = torch.autograd.grad(losses[name], shared + own, allow_unused=True,
                                        retain_graph=self.keep_graph or i < len(names) - 1)
            rows.append(torch.cat([(g if g is not None else torch.zeros_like(x)).reshape(-1)
                                   for g, x in zip(parts[:len(shared)], shared, strict=True)]))
            head_grads.append(list(zip(own, parts[len(shared):], strict=True)))
        return TaskGradients(torch.stack(rows), head_grads)

    def apply(self, shared_pass: SharedPass, direction: torch.Tensor) -> None:
        """Put the combined gradient ``direction`` (D) of the shared part into the shared
        parameters' ``.grad`` (after the optimizer's ``zero_grad``)."""
        raise NotImplementedError

    def backward_passes(self, num_tasks: int) -> int:
        """Backward passes through the backbone that one step costs (for ``StepStats``)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RepresentationSource(GradientSource):
    """Task gradients on the shared representation ``z``; one backward pass through the shared
    part in all.

    Needs a model with one representation that every task's output is computed from: its
    ``shared_representation(x) -> z`` (a tensor, or a tuple of tensors such as a trunk's
    feature map and the skips its branches still read) and ``heads_from(z, tasks) -> {task:
    output}``. ``MultiTaskModel`` has them (``z = backbone(x)``), and so do the architectures
    with such a representation (``core.architectures``); the others raise a ``TypeError`` that
    says why and to use ``source='parameters'``.

    The heads run on detached copies of ``z``'s tensors, so the task gradients are the partial
    derivatives on each tensor; ``apply`` then backpropagates the direction through every
    tensor of ``z`` at once, which gives the parameters the exact chain rule even where one
    tensor of ``z`` is computed from another (a skip and the map made from it).
    """

    name = "representation"
    per_sample = True

    def forward(self, model: nn.Module, images: torch.Tensor, tasks: Sequence[str]) -> SharedPass:
        if not (hasattr(model, "shared_representation") and hasattr(model, "heads_from")):
            raise TypeError(
                f"source='representation' needs a MultiTaskModel (or a model with "
                f"shared_representation(x) and heads_from(z, tasks): one representation every "
                f"task's output is computed from); got a {type(model).__name__}: use "
                "source='parameters'"
            )
        z = model.shared_representation(images)
        trunk = list(z) if isinstance(z, (tuple, list)) else [z]
        # Detached leaves: the heads' graphs end at z, so the task gradients are the partial
        # derivatives on z's tensors and the shared part's graph stays whole for apply().
        leaves = [t.detach().requires_grad_() for t in trunk]
        outputs = model.heads_from(leaves if isinstance(z, (tuple, list)) else leaves[0], tasks)
        return SharedPass(outputs, leaves, trunk)

    def apply(self, shared_pass: SharedPass, direction: torch.Tensor) -> None:
        parts, offset = [], 0
        for t in shared_pass.trunk:
            parts.append(direction[offset:offset + t.numel()].view_as(t))
            offset += t.numel()
        # The one backward through the shared part.
        torch.autograd.backward(shared_pass.trunk, parts)

    def backward_passes(self, num_tasks: int) -> int:
        return 1


class ParameterSource(GradientSource):
    """Task gradients on the shared parameters: ``params`` if given, else the model's
    ``shared_parameters()`` (the backbone's); one backward pass through the backbone per task."""

    name = "parameters"

    def __init__(self, params: Iterable[nn.Parameter] | None = None) -> None:
        self.params = None
        if params is not None:
            self.params = [p for p in params if p.requires_grad]
            if not self.params:
                raise ValueError("argument 'params' holds no trainable parameters to differentiate")

    def parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """The trainable parameters the gradients are taken on (P scalars in all)."""
        if self.params is not None:
            return self.params
        if not hasattr(model, "shared_parameters"):
            raise TypeError(
                f"source='parameters' needs a model with shared_parameters() (a MultiTaskModel), "
                f"or the parameters to use; got a {type(model).__name__}"
            )
        shared = [p for p in model.shared_parameters() if p.requires_grad]
        if not shared:
            raise ValueError("the model has no trainable shared parameters to combine gradients on")
        return shared

    def forward(self, model: nn.Module, images: torch.Tensor, tasks: Sequence[str]) -> SharedPass:
        shared = self.parameters(model)
        return SharedPass(model(images), shared)

    def apply(self, shared_pass: SharedPass, direction: torch.Tensor) -> None:
        offset = 0
        for p in shared_pass.shared:
            p.grad = direction[offset:offset + p.numel()].view_as(p).clone()
            offset += p.numel()

    def backward_passes(self, num_tasks: int) -> int:
        return num_tasks


GRADIENT_SOURCES: dict[str, Callable[[], GradientSource]] = {
    "representation": RepresentationSource,
    "parameters": ParameterSource,
}


def make_gradient_source(source: str | GradientSource) -> GradientSource:
    """A ``GradientSource`` from its name in ``GRADIENT_SOURCES``, or the instance as given."""
    if isinstance(source, GradientSource):
        return source
    check_choice("source", source, tuple(GRADIENT_SOURCES))
    return GRADIENT_SOURCES[source]()
