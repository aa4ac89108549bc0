"""Gradient conflict: how the tasks' gradients on the shared parameters relate.

``task_gradients`` gives each task's gradient on the shared parameters (through
``gradient_source.ParameterSource``, the same code the weighting methods use),
``cosine_matrix`` and ``pairwise_cosines`` compare them, and ``gradient_conflict`` measures it in
the middle of training without changing what training does (``train(..., conflict_every=k)``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from ..core.losses import MultiTaskLoss
from ..core.tasks import Task
from .gradient_source import ParameterSource
from .strategy import Batch


def _as_loss(loss_fn: MultiTaskLoss | Mapping[str, Task]) -> MultiTaskLoss:
    if isinstance(loss_fn, MultiTaskLoss):
        return loss_fn
    if isinstance(loss_fn, Mapping) and all(isinstance(t, Task) for t in loss_fn.values()):
        return MultiTaskLoss(loss_fn)
    raise TypeError(
        f"argument 'loss_fn' is a {type(loss_fn).__name__}, expected a MultiTaskLoss or a dict "
        "of tasks"
    )


def task_gradients(
    model: nn.Module,
    batch: Batch,
    loss_fn: MultiTaskLoss | Mapping[str, Task],
    params: Iterable[nn.Parameter] | None = None,
) -> dict[str, torch.Tensor]:
    """Each task's gradient of its own (unweighted) loss on the shared parameters.

    One forward pass of the whole model (backbone once, every head), then one
    ``torch.autograd.grad`` per task back through its head and the backbone. Nothing is written
    to the parameters' ``.grad``, so it can run between training steps. The model's mode is
    used as it is (train mode in training). A parameter the task's loss does not reach gets a
    zero gradient.

    Args:
        model: the multi-task model (``{task: output}``).
        batch: ``{"image": N x 3 x H x W, task: labels, ...}``; moved to the model's device.
        loss_fn: a ``MultiTaskLoss`` or a dict of tasks (weights are not applied).
        params: the shared parameters (default ``model.shared_parameters()``, the backbone's).

    Returns:
        ``{task: g}``, each ``g`` a 1-D tensor of P entries (P shared scalars), in the tasks'
        order.
    """
    loss_fn = _as_loss(loss_fn)
    if params is None and not hasattr(model, "shared_parameters"):
        raise TypeError(
            f"argument 'params' is None and the model ({type(model).__name__}) has no "
            "shared_parameters(): pass the shared parameters"
        )
    source = ParameterSource(model.shared_parameters() if params is None else params)
    if "image" not in batch:
        raise KeyError(f"the batch has no 'image' entry (batch keys: {tuple(batch)})")
    device = source.parameters(model)[0].device
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    shared_pass = source.forward(model, batch["image"], list(loss_fn.tasks))
    losses = loss_fn.per_task(shared_pass.outputs, batch)
    G = source.task_gradients(shared_pass, losses).matrix  # T x P
    return dict(zip(losses, G.unbind(0), strict=True))


def cosine_matrix(grads: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Cosine similarities of the gradients: a T x T float64 tensor on the CPU, in ``grads``'
    order; entry (i, j) is ``<g_i, g_j> / (|g_i| |g_j|)``. NaN where a gradient is zero (the
    angle is undefined). Computed in float64 so that equal gradients give 1 to ~1e-15."""
    if not isinstance(grads, Mapping) or not grads:
        raise ValueError("argument 'grads' is empty, expected {task: 1-D gradient tensor}")
    flat = [g.detach().reshape(-1).double().cpu() for g in grads.values()]
    sizes = {len(g) for g in flat}
    if len(sizes) != 1:
        raise ValueError(
            f"argument 'grads' holds gradients of sizes {[len(g) for g in flat]}, expected one "
            "size (gradients on the same parameters)"
        )
    g = torch.stack(flat)  # T x P
    norms = g.norm(dim=1)
    cos = (g @ g.T) / torch.outer(norms, norms)  # zero norms give nan (0/0) or inf
    cos[(norms == 0).unsqueeze(0) | (norms == 0).unsqueeze(1)] = math.nan
    return cos.clamp(-1.0, 1.0)  # rounding can overshoot 1 by an ulp; clamp keeps nan as nan


def pair_name(a: str, b: str) -> str:
    """The key of a task pair in ``pairwise_cosines`` and ``History.conflict``: ``"a|b"``."""
    return f"{a}|{b}"


def pairwise_cosines(grads: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """``{"a|b": cosine}`` for every pair of tasks, a before b in ``grads``' order."""
    names = list(grads)
    cos = cosine_matrix(grads).tolist()
    return {pair_name(names[i], names[j]): cos[i][j]
            for i in range(len(names)) for j in range(i + 1, len(names))}


@contextmanager
def _side_effect_free(model: nn.Module) -> Iterator[None]:
    """Undo what an extra forward pass would leave behind: random draws (dropout) and buffers
    (batch-norm running statistics), so measuring does not change the training trajectory."""
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    cuda = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            with torch.no_grad():
                for buffer, saved in buffers:
                    buffer.copy_(saved)


def gradient_conflict(
    model: nn.Module, batch: Batch, loss_fn: MultiTaskLoss | Mapping[str, Task]
) -> dict[str, dict[str, float]]:
    """How the tasks' gradients on the shared parameters relate, on one batch.

    Returns plain floats: ``{"cosine": {"a|b": c, ...}, "norm": {task: |g_task|, ...}}``.
    Leaves the model, its ``.grad``, its buffers and the random state as they were.
    """
    with _side_effect_free(model):
        grads = task_gradients(model, batch, loss_fn)
    return {"cosine": pairwise_cosines(grads),
            "norm": {t: float(g.double().norm()) for t, g in grads.items()}}

