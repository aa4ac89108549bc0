"""Checks of notebook 02 (heads and the multi-task model): a fourth task, the sum of the two
digits, and the multi-task score."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping

import torch
from torch import nn

from ...core.tasks import CLASSIFICATION, Task
from ...data.multidigits import MultiDigits
from .common import ExerciseError, call_answer, correct


def _sum_label_problem(labels: object, left: torch.Tensor, right: torch.Tensor) -> str | None:
    """What is wrong with ``labels`` as the sums ``left + right`` (int64, B), or None if right.

    Names the wrong answers students give (one digit only, the sum modulo 10, the right sums in
    the wrong order, all zeros, float labels) so the message says what to fix.
    """
    if not isinstance(labels, torch.Tensor):
        return f"the 'sum' labels are a {type(labels).__name__}, expected a tensor of class indices"
    if labels.dtype != torch.int64:
        return (
            f"the 'sum' labels have dtype {labels.dtype}, expected torch.int64: cross-entropy "
            "takes class indices (int64), not values. Hint: left + right is int64 already; "
            "don't convert it"
        )
    if tuple(labels.shape) != tuple(left.shape):
        return (
            f"the 'sum' labels have shape {tuple(labels.shape)}, expected {tuple(left.shape)}: "
            "one label per sample"
        )
    labels, left, right = labels.cpu(), left.cpu(), right.cpu()
    expected = left + right
    if torch.equal(labels, expected):
        return None
    if torch.equal(labels, left) or torch.equal(labels, right):
        return "the 'sum' labels are one digit's labels; expected left + right of each sample"
    if torch.equal(labels, expected % 10):
        return (
            "the 'sum' labels are (left + right) modulo 10 (the last digit of the sum); expected "
            "the whole sum: 9 + 9 = 18 is a class of its own"
        )
    if not labels.any():
        return "the 'sum' labels are all 0; expected left + right of each sample"
    if torch.equal(labels.sort().values, expected.sort().values):
        return (
            "the 'sum' labels are the right sums in the wrong order: each sample's label must be "
            "its own left + right (don't shuffle or sort them)"
        )
    i = int((labels != expected).nonzero()[0])
    return (
        f"sample {i} has left {int(left[i])} and right {int(right[i])}, so its sum is "
        f"{int(expected[i])}, but its 'sum' label is {int(labels[i])}; expected left + right of "
        "each sample"
    )


def _sum_check_batch() -> dict[str, torch.Tensor]:
    """Real MultiDigits test samples whose sums cover every class 0 ... 18, extremes included.

    B = 64: the first sample of each sum, then the next ones in order.
    """
    data = MultiDigits("test", size=600, seed=1)
    sums = data.batch(torch.arange(len(data)))
    sums = sums["left"] + sums["right"]
    first = [int((sums == s).nonzero()[0]) for s in range(19)]
    rest = [i for i in range(len(data)) if i not in first][: 64 - len(first)]
    return data.batch(torch.tensor(first + rest))


def check_sum_task(
    task: object, model: object, add_sum: Callable, batch: object, losses: object
) -> None:
    """Exercise 02.1: a fourth task, the sum of the two digits.

    Args:
        task: the ``mtl.Task`` declared for the sum.
        model: a ``MultiTaskModel`` with heads for ``left``, ``right``, ``mask`` and ``sum``.
        add_sum: ``add_sum(batch) -> batch`` with a ``sum`` entry added (int64 B, left + right);
            tried on real MultiDigits batches whose sums cover 0 ... 18.
        batch: the training batch the losses were computed on (with its ``sum`` labels).
        losses: what ``MultiTaskLoss`` returned for the model's outputs on ``batch``; its
            ``sum`` loss must be the cross-entropy of the model's ``sum`` output on
            ``batch["left"] + batch["right"]``.
    """
    # 1. The declaration.
    if not isinstance(task, Task):
        raise ExerciseError(f"'task' should be a mtl.Task, got {type(task).__name__}")
    if task.name != "sum" or task.kind != CLASSIFICATION:
        raise ExerciseError(
            f"the task is {task.name!r} of kind {task.kind!r}; expected a classification task "
            "named 'sum' (the batch key of its labels)"
        )
    if task.num_classes != 19:
        raise ExerciseError(
            f"the task has {task.num_classes} classes; two digits 0-9 add up to 0 ... 18. "
            "Hint: how many values is that?"
        )

    # 2. The labels, on real batches whose sums cover every class.
    if not callable(add_sum):
        raise ExerciseError(
            f"'add_sum' should be a function batch -> batch, got {type(add_sum).__name__}"
        )
    real = _sum_check_batch()
    for part in (real, {k: v[:5] for k, v in real.items()}):  # a full batch and a small one
        original = {k: v.clone() for k, v in part.items()}
        out = call_answer(add_sum, dict(part))
        if not isinstance(out, Mapping) or "sum" not in out:
            got = sorted(out) if isinstance(out, Mapping) else type(out).__name__
            raise ExerciseError(
                f"add_sum(batch) returned {got}; expected the batch (a dict) with a 'sum' entry "
                "added. Hint: {**batch, 'sum': ...}"
            )
        for key, value in original.items():
            kept = out.get(key)
            if not isinstance(kept, torch.Tensor) or not torch.equal(kept.cpu(), value):
                raise ExerciseError(
                    f"add_sum(batch) dropped or changed the batch's {key!r}; expected it to keep "
                    "every entry and add 'sum'. Hint: {**batch, 'sum': ...}"
                )
        problem = _sum_label_problem(out["sum"], original["left"], original["right"])
        if problem is not None:
            raise ExerciseError(f"add_sum(batch): {problem}.")

    # 3. The model's heads.
    heads = getattr(model, "heads", {})
    if not isinstance(model, nn.Module) or set(heads) != {"left", "right", "mask", "sum"}:
        raise ExerciseError(
            f"the model has heads {sorted(heads)}, expected the three course tasks plus 'sum'"
        )
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 28, 28, device=device))
    if tuple(out["sum"].shape) != (2, 19):
        raise ExerciseError(f"the 'sum' head gives {tuple(out['sum'].shape)}, expected (B, 19)")

    # 4. The batch the losses were computed on, and the losses themselves.
    if not isinstance(batch, Mapping) or not {"image", "left", "right", "sum"} <= set(batch):
        got = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
        raise ExerciseError(
            f"'batch' holds {got}; expected the training batch with its 'sum' labels "
            "(add_sum(batch))"
        )
    problem = _sum_label_problem(batch["sum"], batch["left"], batch["right"])
    if problem is not None:
        raise ExerciseError(f"'batch': {problem}.")
    tasks = {"left", "right", "mask", "sum"}
    if not isinstance(losses, Mapping) or not tasks | {"total"} <= set(losses):
        got = sorted(losses) if isinstance(losses, Mapping) else type(losses).__name__
        raise ExerciseError(
            f"'losses' holds {got}; expected the dict that MultiTaskLoss returned, with a loss "
            "for each of the four tasks and the 'total'"
        )
    with torch.no_grad():
        logits = model(batch["image"].to(device))["sum"]
        sums = (batch["left"] + batch["right"]).to(device)
        expected = float(nn.functional.cross_entropy(logits, sums))
    try:
        as_float = {k: float(torch.as_tensor(losses[k]).detach()) for k in tasks | {"total"}}
    except (TypeError, ValueError, RuntimeError) as err:
        raise ExerciseError(
            f"the values of 'losses' should be scalar tensors, as MultiTaskLoss returns: {err}"
        ) from err
    value = as_float["sum"]
    if not math.isclose(value, expected, rel_tol=1e-4, abs_tol=1e-4):
        raise ExerciseError(
            f"losses['sum'] is {value:.4f}, but the cross-entropy of the model's 'sum' output on "
            f"this batch's left + right is {expected:.4f}. Hint: compute the losses with this "
            "model on the batch you pass here, after add_sum"
        )
    total = sum(as_float[t] for t in tasks)
    if not math.isclose(as_float["total"], total, rel_tol=1e-4, abs_tol=1e-4):
        raise ExerciseError(
            f"losses['total'] is {as_float['total']:.4f}, expected the sum of the four "
            f"task losses, {total:.4f}. Hint: MultiTaskLoss over all four tasks adds it"
        )
    correct(
        "the 'sum' labels are left + right (19 classes, 0 ... 18), and its loss is the "
        f"cross-entropy of the 'sum' head on them (untrained: near ln(19) = {math.log(19):.2f})."
    )


def check_multitask_score(multitask_score: Callable) -> None:
    """Exercise 02.2: the multi-task score, mean relative change against single-task.

    The cases tell apart the usual slips: the absolute change, dividing by the multi-task
    metric, the wrong sign, the sum instead of the mean, percent instead of a fraction, the
    ratio of the means, and pairing tasks by position instead of by name.
    """
    cases = [
        ({"a": 0.9, "b": 0.8}, {"a": 0.9, "b": 0.8}, 0.0),
        ({"a": 0.99, "b": 0.8}, {"a": 0.9, "b": 0.8}, 0.05),
        ({"a": 0.5, "b": 0.5}, {"a": 1.0, "b": 0.25}, (-0.5 + 1.0) / 2),
        ({"x": 0.6}, {"x": 0.8}, -0.25),
        # three tasks, and the two dicts list them in different orders: match tasks by name
        ({"c": 0.4, "a": 0.6, "b": 0.9}, {"a": 0.5, "b": 0.9, "c": 0.8}, (0.2 + 0 - 0.5) / 3),
    ]
    for multi, single, expected in cases:
        got = call_answer(multitask_score, multi, single)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, numbers.Real):
            raise ExerciseError(
                f"multitask_score({multi}, {single}) returned {got!r}, expected a number "
                f"({expected:.4f})"
            )
        if abs(float(got) - expected) > 1e-9:
            hint = "for each task, (multi - single) / single; then the mean over tasks"
            if expected and abs(float(got) - 100 * expected) < 1e-6:
                hint = "return a fraction (0.05), not a percentage (5)"
            elif len(single) == 3:
                hint = ("match each task's multi and single metrics by task name "
                        "(multi[t], single[t]), not by position")
            raise ExerciseError(
                f"multitask_score({multi}, {single}) returned {got!r}, expected {expected:.4f}. "
                f"Hint: {hint}."
            )
    correct("a positive score means sharing helped on average, relative to each task's scale.")
