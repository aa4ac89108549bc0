"""``Weighted``: the training strategy that runs any weighting method, one update per batch.

``train(..., strategy=Weighted("mgda"))`` or ``train(..., strategy="mgda")``: the loop needs no
special case for a method. Loss-based methods backpropagate their weighted loss through the
whole model. Methods that use task gradients take them from a gradient source
(``gradient_source``: on the shared features, ``"representation"``, by default; or on the shared
parameters, ``"parameters"``) and put the combined direction back through it.

Task heads are trained on their own loss's gradient: times the task's weight for loss-based
methods (GradNorm included: a plain backward of ``sum_t w_t L_t``), unweighted for the
gradient-combination methods (Sener & Koltun's Algorithm 2, as in LibMTL). Methods with
learnable parameters (uncertainty's log-variances, GradNorm's weights) own a small Adam
optimizer for them, stepped after the model's, so they train whatever optimizer the model uses
(they do not follow the model's learning-rate schedule). Their state is checkpointed with the
strategy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ...core.losses import MultiTaskLoss
from ..distributed import (
    average,
    average_gradients,
    average_tensors,
    is_distributed,
    world_size,
)
from ..gradient_source import GradientSource, SharedPass, TaskGradients, make_gradient_source
from ..gradients import gram
from ..precision import backward, loss_scale, optimizer_step, skip_step
from ..strategy import Batch, OptimizerArg, StepStats, Strategy, check_finite
from .base import Combination, WeightingMethod
from .registry import gradient_methods, make_weighting_method

DEFAULT_SOURCE = "representation"  # where gradient methods take task gradients unless told


class NonFiniteWeightError(RuntimeError):
    """A weighting method produced NaN or infinite weights or gradients; raised before the
    update that would spread them."""


def _finite_weights(comb: Combination, method: str, tasks: Sequence[str], step: int) -> list:
    weights = comb.weights.detach().double().cpu().tolist()
    bad = {t: w for t, w in zip(tasks, weights, strict=True) if not math.isfinite(w)}
    if bad:
        raise NonFiniteWeightError(
            f"method {method!r} gave non-finite task weights {bad} at step {step}; training "
            "stopped before this update"
        )
    if comb.direction is not None and not bool(torch.isfinite(comb.direction).all()):
        raise NonFiniteWeightError(
            f"method {method!r} gave a non-finite combined gradient at step {step}; training "
            "stopped before this update"
        )
    return weights


class Weighted(Strategy):
    """Joint training with a weighting method: one forward pass, one update per batch.

    Args:
        method: a name from ``WEIGHTING_METHODS`` or a ``WeightingMethod`` instance.
        source: for methods that use task gradients: ``"representation"`` (default; gradients
            on the shared features, one backward through the backbone), ``"parameters"``
            (gradients on all shared parameters, one backward through the backbone per task),
            or a ``GradientSource``. Loss-based methods take none.
        **options: passed to the method's class (``Weighted("cagrad", c=0.4)``).

    Work per step: 1 forward; backward passes through the backbone: as the source says (1, or
    T with ``source="parameters"``); 1 for loss-based methods. ``StepStats.weights`` holds the
    step's task weights (recorded in ``History.weights``). Needs ``train``'s ``weights`` to be
    left at 1 (use ``"fixed"``).

    Under torchrun (a process group of W processes, each with its shard of the global batch)
    the method sees the global batch, identically on every process:

    - loss-based methods: the T losses are averaged over the processes (T floats) before the
      method combines them; the model is in DistributedDataParallel, which averages its
      gradients during the backward pass;
    - gradient methods, ``source="representation"``: the representation's coordinates are
      per sample, so the global Gram matrix of the task gradients is ``(1/W^2) sum_r A_r``
      (mean losses: the global row is the local one divided by W). One all-reduce of the
      T x T local Gram matrices and the T losses; every process solves the weights on it
      (``weights_from_gram``), backpropagates ``w @ G_r`` from its shard, and the model's
      gradients are averaged once (one bucket);
    - gradient methods, ``source="parameters"``: the T x P task gradients are averaged
      (T times joint's communication), the method combines them as in one process, and the
      heads' gradients are averaged.

    ``global_batch = False`` (a subclass in the tests) is the naive port instead: each process
    weights its own shard, then the gradients are averaged.
    """

    optimizers = "shared"
    global_batch = True

    def __init__(
        self,
        method: str | WeightingMethod = "equal",
        *,
        source: str | GradientSource | None = None,
        **options: Any,
    ) -> None:
        self.method = make_weighting_method(method, **options)
        self.gradient_source: GradientSource | None = None
        if self.method.uses_gradients:
            self.gradient_source = make_gradient_source(
                DEFAULT_SOURCE if source is None else source)
        elif source is not None:
            raise ValueError(
                f"argument 'source' is {source!r}, but method {self.method.name!r} weights the "
                f"losses without task gradients; 'source' applies to {gradient_methods()}"
            )
        self.source = None if self.gradient_source is None else self.gradient_source.name
        self.name = self.method.name
        # Under torchrun: loss-based methods run in DistributedDataParallel; gradient methods
        # take the bare model and reduce what they need themselves.
        self.ddp = self.gradient_source is None

    def setup(self, loss_fn: MultiTaskLoss) -> None:  # noqa: D102 (see Strategy.setup)
        fixed = {t: w for t, w in loss_fn.weights.items() if w != 1.0}
        if fixed:
            raise ValueError(
                f"argument 'weights' is {loss_fn.weights}, but strategy {self!r} sets the task "
                "weights itself: leave 'weights' out, or use Weighted('fixed', weights=...)"
            )
        self.method.reset(list(loss_fn.tasks))
        per_sample = getattr(self.gradient_source, "per_sample", False)
        if is_distributed() and per_sample and not hasattr(self.method, "combine_gram"):
            raise TypeError(
                f"method {self.name!r} has no combine_gram(losses, G, A) (its weights from the "
                f"global Gram matrix), so it cannot run distributed with source={self.source!r}: "
                "use source='parameters' (the task gradients are averaged), or give it one"
            )

    def step(
        self,
        model: nn.Module,
        batch: Batch,
        loss_fn: MultiTaskLoss,
        optimizer: OptimizerArg,
        step: int,
    ) -> StepStats:
        """One update of ``model`` on ``batch`` (see ``Strategy.step``)."""
        if isinstance(optimizer, Mapping):
            raise TypeError(
                f"Weighted({self.name!r}) makes one update with one optimizer; it got per-task "
                f"optimizers for {tuple(optimizer)}"
            )
        tasks = list(loss_fn.tasks)
        if self.method.tasks != tasks:
            self.method.reset(tasks)
        if self.gradient_source is None:
            floats, weights = self._loss_update(model, batch, loss_fn, optimizer, step, tasks)
            backward = 1
        else:
            floats, weights = self._gradient_update(model, batch, loss_fn, optimizer, step, tasks)
            backward = self.gradient_source.backward_passes(len(tasks))
        # Under fp16, an update whose gradients overflowed is skipped, the method's own
        # parameters included (``precision``): weights is None when the task gradients did.
        if weights is not None and optimizer_step(optimizer, extra=self.method.parameters()):
            self.method.update()
        return StepStats(floats, forward=1, backward=backward, images=len(batch["image"]),
                         weights=None if weights is None else dict(zip(tasks, weights,
                                                                       strict=True)))

    def _loss_update(
        self,
        model: nn.Module,
        batch: Batch,
        loss_fn: MultiTaskLoss,
        optimizer: torch.optim.Optimizer,
        step: int,
        tasks: list[str],
    ) -> tuple[dict[str, float], list[float]]:
        """Gradients of the method's weighted loss, through the whole model."""
        images = batch["image"]
        losses = loss_fn.per_task(model(images), batch)
        floats = check_finite(losses, step)
        self.method.to(images.device)
        stacked = torch.stack([losses[t] for t in tasks])
        if is_distributed() and self.global_batch:
            # The global batch's mean losses as values, this shard's graph for the gradients:
            # DDP averages the model's gradients, the method's own see the global values.
            stacked = stacked + (average(stacked.detach()) - stacked.detach())
        comb = self.method.combine(stacked)
        weights = _finite_weights(comb, self.name, tasks, step)
        optimizer.zero_grad(set_to_none=True)
        backward(comb.loss)  # of the scaled loss under fp16
        return floats, weights

    def _gradient_update(
        self,
        model: nn.Module,
        batch: Batch,
        loss_fn: MultiTaskLoss,
        optimizer: torch.optim.Optimizer,
        step: int,
        tasks: list[str],
    ) -> tuple[dict[str, float], list[float]]:
        """The task gradients from the source, combined by the method, put back through it;
        each head gets its own task's gradient times the method's head weight."""
        if not (hasattr(model, "shared_parameters") and hasattr(model, "task_parameters")):
            raise TypeError(
                f"method {self.name!r} needs per-task gradients, so a model with a shared "
                f"backbone and one head per task (a MultiTaskModel); got a {type(model).__name__}"
            )
        source = self.gradient_source
        shared_pass = source.forward(model, batch["image"], tasks)
        losses = loss_fn.per_task(shared_pass.outputs, batch)
        floats = check_finite(losses, step)
        heads = {t: [p for p in model.task_parameters(t) if p.requires_grad] for t in tasks}
        # Under fp16 the losses are scaled for the backward passes and the task gradients divided
        # by the scale before the method sees them; the heads' gradients stay scaled, like the
        # shared part's after apply(), until optimizer_step divides them all (``precision``).
        scale = loss_scale()
        grads = source.task_gradients(
            shared_pass, losses if scale == 1.0 else {t: v * scale for t, v in losses.items()},
            heads)
        if scale != 1.0:
            grads.matrix = grads.matrix / scale
            if not self._all_finite(grads.matrix):  # an overflow: skip this update
                skip_step()
                optimizer.zero_grad(set_to_none=True)
                return floats, None
        G = grads.matrix  # T x D
        finite = torch.isfinite(G).all(dim=1).tolist()
        if not all(finite):
            bad = [t for t, ok in zip(tasks, finite, strict=True) if not ok]
            raise NonFiniteWeightError(
                f"the gradients of task(s) {bad} are not finite at step {step} (method "
                f"{self.name!r}); training stopped before this update"
            )
        self.method.to(G.device)
        values = torch.stack([losses[t].detach() for t in tasks])
        if is_distributed():
            return floats, self._distributed_update(model, shared_pass, grads, values, optimizer,
                                                    step, tasks)
        comb = self.method.combine(values, G)
        weights = _finite_weights(comb, self.name, tasks, step)
        optimizer.zero_grad(set_to_none=True)
        source.apply(shared_pass, comb.direction * scale if scale != 1.0 else comb.direction)
        grads.write_heads(comb.head_weights.tolist())
        return floats, weights

    @staticmethod
    def _all_finite(G: torch.Tensor) -> bool:
        """Whether G is finite on every process (one all-reduce of a flag when distributed,
        so that every process skips the same steps)."""
        ok = torch.isfinite(G).all().to(torch.float64).reshape(1)
        if is_distributed():
            ok = average(ok)
        return bool(ok.item() == 1.0)

    def _distributed_update(
        self,
        model: nn.Module,
        shared_pass: SharedPass,
        grads: TaskGradients,
        values: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        step: int,
        tasks: list[str],
    ) -> list[float]:
        """The gradient update under torchrun: the method solved on the global batch's
        statistics (see the class docstring), the gradients averaged once."""
        source, G, T = self.gradient_source, grads.matrix, len(tasks)
        if not self.global_batch:  # the naive port: this shard's weights
            comb = self.method.combine(values, G)
            to_average = list(model.parameters())
        elif source.per_sample:  # T x T + T numbers
            local = torch.cat([torch.as_tensor(gram(G)).reshape(-1), values.double().cpu()])
            reduced = average(local)
            A = reduced[:T * T].view(T, T).numpy() / world_size()
            comb = self.method.combine_gram(reduced[T * T:].to(values), G, A)
            to_average = list(model.parameters())
        else:  # T x P numbers: the task gradients themselves
            average_tensors([G, values])
            comb = self.method.combine(values, G)
            # the shared part's direction is already the global one: the heads' gradients only
            to_average = [p for t in tasks for p in model.task_parameters(t) if p.requires_grad]
        weights = _finite_weights(comb, self.name, tasks, step)
        optimizer.zero_grad(set_to_none=True)
        source.apply(shared_pass, comb.direction * loss_scale())
        grads.write_heads(comb.head_weights.tolist())
        average_gradients(to_average)
        return weights

    def state_dict(self) -> dict[str, Any]:
        return {"strategy": "weighted", "method": self.name, "source": self.source,
                "state": self.method.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("method") != self.name or state.get("source") != self.source:
            raise ValueError(
                f"the checkpoint's strategy state is for method {state.get('method')!r} with "
                f"source {state.get('source')!r}, expected {self.name!r} with source "
                f"{self.source!r} (resume with the strategy the run was started with)"
            )
        self.method.load_state_dict(state["state"])

    def __repr__(self) -> str:
        source = f", source={self.source!r}" if self.source else ""
        return f"Weighted({self.method!r}{source})"
