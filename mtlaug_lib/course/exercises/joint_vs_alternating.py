"""Checks of notebook 04 (joint versus alternating): an alternating step and the cosine of two
gradients."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ...core.models import make_model
from ...core.tasks import select_tasks
from ...data.multidigits import multidigits_tasks
from .common import ExerciseError, call_answer, correct

# Plain SGD (no momentum, no weight decay) in the check: a step moves each parameter by exactly
# -lr * its .grad, so a wrong update can be traced back to the gradient that caused it.
_STEP_LR = 0.1


def _sgd_change(
    model: nn.Module, images: torch.Tensor, head: str, labels: torch.Tensor
) -> dict[str, torch.Tensor]:
    """``{parameter name: change}`` of one SGD step on head ``head``'s cross-entropy against
    ``labels`` (N), computed with ``autograd.grad``: ``model`` and its ``.grad`` stay as they
    are. Parameters the loss does not reach are left out (they do not move)."""
    used = [(n, p) for n, p in model.named_parameters()
            if n.startswith("backbone.") or n.startswith(f"heads.{head}.")]
    loss = F.cross_entropy(model.heads[head](model.backbone(images)), labels)
    grads = torch.autograd.grad(loss, [p for _, p in used])
    return {n: -_STEP_LR * g for (n, _), g in zip(used, grads, strict=True)}


def _moved_by(
    after: dict[str, torch.Tensor],
    before: dict[str, torch.Tensor],
    change: dict[str, torch.Tensor],
) -> bool:
    """Whether every parameter moved from ``before`` to ``after`` by ``change`` (0 if absent)."""
    return all(
        torch.allclose(after[n] - before[n], change.get(n, torch.zeros_like(before[n])),
                       rtol=1e-4, atol=1e-6)
        for n in before
    )


def _alternating_mistake(
    task: str,
    other: str,
    after: dict[str, torch.Tensor],
    before: dict[str, torch.Tensor],
    stale: dict[str, torch.Tensor],
    right: dict[str, torch.Tensor],
    wrong_labels: dict[str, torch.Tensor],
) -> str | None:
    """What a student's step on ``task`` did wrong, judged by how it moved the parameters
    (``None`` if it moved them like the right step ``right``)."""
    if _moved_by(after, before, right):
        return None
    if _moved_by(after, before, {}):
        return (
            "your step left every parameter unchanged. Hint: call optimizer.step() after "
            "loss.backward(), and zero the gradients before the backward, not between the "
            "backward and the step (the step uses what .grad holds at that moment)."
        )
    leftover = {n: -_STEP_LR * g for n, g in stale.items()}
    if _moved_by(after, before, {n: right.get(n, 0) + leftover.get(n, 0) for n in before}):
        return (
            "your update also applied the gradients that were already in .grad before your "
            "step (from an earlier backward): backward() adds to .grad, it does not replace "
            "it. Hint: call optimizer.zero_grad() before loss.backward()."
        )
    if _moved_by(after, before, {n: 2 * c for n, c in right.items()}):
        return (
            "your update is twice the right one: the gradient was accumulated twice (two "
            "backward calls on the loss, or the loss counted twice). Hint: one loss, one "
            "loss.backward(), one optimizer.step()."
        )
    if _moved_by(after, before, wrong_labels):
        return (
            f"your step trained head {task!r} on the labels of task {other!r}. Hint: the loss "
            "compares model.heads[task]'s output with batch[task]."
        )
    moved = next(n for n in before
                 if not _moved_by({n: after[n]}, {n: before[n]}, {n: right.get(n, 0 * after[n])}))
    return (
        f"parameter {moved} moved differently from one optimizer step on task {task!r}'s "
        "cross-entropy loss (the mean over the batch). Hint: zero the gradients, run the "
        "backbone and model.heads[task], F.cross_entropy(output, batch[task]), backward, "
        "optimizer.step()."
    )


def check_alternating_step(alternating_step: Callable) -> None:
    """Exercise 04.1: ``alternating_step(model, batch, task, optimizer)`` updates the model on
    one task, running only the backbone and that task's head.

    The check calls the student's step four times in a row on one model and one optimizer
    (plain SGD), alternating the tasks, with gradients left in ``.grad`` before the first call
    (as an earlier backward would leave them), and compares every parameter with the right
    update after each call: a step that forgets ``zero_grad``, backpropagates twice, skips the
    step, uses the other task's labels or runs the other head is caught and named.
    """
    tasks = select_tasks(multidigits_tasks(), ["left", "right"])
    g = torch.Generator().manual_seed(0)
    batches = [{"image": torch.rand(8, 3, 28, 28, generator=g),
                "left": torch.randint(10, (8,), generator=g),
                "right": torch.randint(10, (8,), generator=g)} for _ in range(2)]
    model = make_model(tasks, seed=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=_STEP_LR)
    for p in model.parameters():  # what an earlier backward (another task, an audit) left
        p.grad = 0.01 * torch.randn(p.shape, generator=g)
    calls: list[str] = []
    for name, head in model.heads.items():
        head.register_forward_hook(lambda *args, name=name: calls.append(name))
    for k, (task, batch) in enumerate([("left", batches[0]), ("right", batches[0]),
                                       ("left", batches[1]), ("right", batches[1])]):
        other = "right" if task == "left" else "left"
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        stale = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        right = _sgd_change(model, batch["image"], task, batch[task])
        wrong_labels = _sgd_change(model, batch["image"], task, batch[other])
        calls.clear()
        call_answer(alternating_step, model, batch, task, optimizer)
        if calls != [task]:
            raise ExerciseError(
                f"for task {task!r} your step ran the heads {calls}; an alternating step runs "
                f"the backbone, then model.heads[{task!r}] only, and trains on that task's loss "
                "alone (not the sum of every task's loss)."
            )
        after = {n: p.detach().clone() for n, p in model.named_parameters()}
        mistake = _alternating_mistake(task, other, after, before, stale, right, wrong_labels)
        if mistake is not None:
            raise ExerciseError(f"call {k + 1} of 4 (task {task!r}): {mistake}")
    correct("one forward pass, one backward pass, one task, fresh gradients at every call: "
             "that is an alternating step.")


def _as_number(got: object) -> float | None:
    """``got`` as a float if it is one number (a float, an int, a one-element tensor)."""
    if isinstance(got, torch.Tensor):
        return float(got) if got.numel() == 1 else None
    if isinstance(got, numbers.Real) and not isinstance(got, bool):
        return float(got)
    return None


def check_gradient_cosine(gradient_cosine: Callable) -> None:
    """Exercise 04.2: the cosine similarity of two gradients given as lists of tensors."""
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(3, 4, generator=g), torch.randn(5, generator=g)
    w = [torch.randn(3, 4, generator=g), torch.randn(5, generator=g)]
    one_vector = ("see all tensors of a list as one long vector: flatten and concatenate them, "
                  "then take one cosine (not the mean of per-tensor cosines, not the first "
                  "tensor alone)")
    cases = [
        ("parallel gradients (b = a)", [u, v], [u.clone(), v.clone()],
         "a gradient's cosine with itself is 1: divide a . b by |a| |b| (the norms, not the "
         "squared norms)"),
        ("opposite gradients (b = -2 a)", [u, v], [-2 * u, -2 * v],
         "opposite gradients give -1: keep the sign of a . b (no abs)"),
        ("orthogonal gradients", [torch.tensor([1.0, 0.0])], [torch.tensor([0.0, 3.0])],
         "orthogonal gradients give 0"),
        ("first tensors equal, second tensors opposite and 3x larger", [u, 3 * v],
         [u.clone(), -3 * v], one_vector),
        ("unrelated gradients, one of them 1000x larger", [u, v], [1000 * t for t in w],
         f"scaling a gradient does not change the cosine; {one_vector}"),
    ]
    for label, x, y, hint in cases:
        kept = [t.clone() for t in x + y]
        flat_x = torch.cat([t.flatten() for t in x]).double()
        flat_y = torch.cat([t.flatten() for t in y]).double()
        expected = float(flat_x @ flat_y / (flat_x.norm() * flat_y.norm()))
        got = call_answer(gradient_cosine, x, y)
        if any(not torch.equal(t, k) for t, k in zip(x + y, kept, strict=True)):
            raise ExerciseError(
                "gradient_cosine changed the tensors it was given (an in-place operation such "
                "as g /= g.norm()): a caller's gradients must stay as they were. Hint: compute "
                "out of place (a = torch.cat(...), then a / a.norm())."
            )
        number = _as_number(got)
        if number is None:
            raise ExerciseError(
                f"for {label}, gradient_cosine returned {got!r}; expected one number (a float). "
                f"Hint: {one_vector}, and return float(...)."
            )
        if not math.isfinite(number) or abs(number - expected) > 1e-5:
            raise ExerciseError(
                f"for {label}, gradient_cosine returned {number:.4f}, expected "
                f"{expected:.4f}. Hint: {hint}."
            )
    correct("parallel gradients give 1, opposite -1, orthogonal 0, and every tensor counts.")
