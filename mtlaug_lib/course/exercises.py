"""Checks for the notebooks' exercises: each says right, or what is wrong and a hint.

A check prints one line starting with ``Correct`` when the answer is right, and raises
``ExerciseError`` (an ``AssertionError``) with a helpful message when it is not, so a wrong
answer stops "Run all" at the exercise, as a failing test would.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
from torch import nn


class ExerciseError(AssertionError):
    """A wrong answer to an exercise; the message says what was expected and a hint."""


def _correct(message: str) -> None:
    print(f"Correct! {message}")


def _call(fn: Callable, *args: object) -> object:
    if not callable(fn):
        raise ExerciseError(
            f"expected a function, got {type(fn).__name__}: define it, then pass it"
        )
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except Exception as err:  # a student's bug: report it as a wrong answer, with the cause
        raise ExerciseError(f"your function raised {type(err).__name__}: {err} for {args}") from err


# --------------------------------------------------------------------------------------------
# Notebook 01: the backbone


def _whole_number(call: str, got: object, what: str, float_hint: str) -> None:
    """Raise unless ``got`` is a whole number (an int; not a float, a bool, a tensor or None)."""
    if got is None:
        raise ExerciseError(f"{call} returned None. Hint: did you forget the `return`?")
    if isinstance(got, bool) or not isinstance(got, numbers.Integral):
        hint = float_hint if isinstance(got, float) else "return a Python int"
        raise ExerciseError(
            f"{call} returned {got!r} ({type(got).__name__}); {what} is a whole number "
            f"(an int). Hint: {hint}."
        )


def _diagnose(
    mistakes: list[tuple[Callable[..., int], str]],
    answers: list[tuple[tuple[int, ...], object]],
    fallback: str,
) -> str:
    """The hint of the first known mistake that gives all the student's answers, else
    ``fallback``. ``answers`` holds ``(arguments, returned value)`` pairs."""
    for wrong, hint in mistakes:
        if all(wrong(*args) == got for args, got in answers):
            return hint
    return fallback


def _unpadded(n: int) -> int:
    """A side after the backbone if its 3x3 convolutions had no padding (each removes 2)."""
    return ((n - 2) // 2 - 2) // 2


_ROUND_EACH_SIDE = (
    "each max-pool rounds height and width down on their own: 30 -> 15 -> 7, not 30 / 4 = 7.5; "
    "rounding or dividing the whole product (64 * 30 * 30 // 16 = 3600) is wrong for odd sizes"
)
# Answers students give to exercise 01.1, each with the hint that explains its mistake.
_FEATURE_SIZE_MISTAKES: list[tuple[Callable[..., int], str]] = [
    (lambda h, w: 64 * 7 * 7, "3,136 is the article's 64 * 7 * 7, right for 28 x 28 inputs "
     "only: compute the size from height and width"),
    (lambda h, w: (h // 4) * (w // 4), "count every channel: the last convolution has 64"),
    (lambda h, w: 32 * (h // 4) * (w // 4), "the last convolution has 64 channels, not 32"),
    (lambda h, w: 3 * 64 * (h // 4) * (w // 4), "the input's 3 channels are not in the "
     "output: it has the 64 channels of the last convolution"),
    (lambda h, w: 64 * (h // 2) * (w // 2), "the backbone has two max-pools: halve twice"),
    (lambda h, w: 64 * h * w, "each 2 x 2 max-pool halves height and width"),
    (lambda h, w: 64 * -(-h // 4) * -(-w // 4),  # also rounding up each halving
     "MaxPool2d rounds down (ceil_mode=False): 15 -> 7, not 8"),
    (lambda h, w: 64 * h * w // 16, _ROUND_EACH_SIDE),
    (lambda h, w: int(64 * (h / 4) * (w / 4)), _ROUND_EACH_SIDE),
    (lambda h, w: round(64 * (h / 4) * (w / 4)), _ROUND_EACH_SIDE),
    (lambda h, w: 64 * (h // 4) * (h // 4), "use the width too: not every input is square"),
    (lambda h, w: 64 * (w // 4) * (w // 4), "use the height too: not every input is square"),
    (lambda h, w: 64 * _unpadded(h) * _unpadded(w),
     "the convolutions have padding 1, so they keep the size"),
]
_FEATURE_SIZE_HINT = (
    "the 3x3 convolutions with padding 1 keep the size; each 2x2 max-pool halves it, rounding "
    "down; the last convolution has 64 channels"
)


def check_feature_size(feature_size: Callable[[int, int], int]) -> None:
    """Exercise 01.1: ``feature_size(height, width)`` -> features the article's extractor gives.

    Compared against the real ``FeatureExtractor`` layers on inputs of several sizes, odd
    and non-square ones included (2x2 max-pooling floors: 15 -> 7). A wrong answer gets the
    hint of the known mistake (``_FEATURE_SIZE_MISTAKES``) that gives the same values.
    """
    from ..core.models import FeatureExtractor

    layers = FeatureExtractor()
    sizes = [(28, 28), (32, 32), (224, 224), (30, 30), (29, 35), (8, 12)]
    # All answers first: the mistake is diagnosed from all of them (one size can fit several).
    answers: list[tuple[tuple[int, ...], object]] = []
    for h, w in sizes:
        got = _call(feature_size, h, w)
        _whole_number(f"feature_size({h}, {w})", got, "a number of features",
                      "pooling rounds down: use integer division //, not /")
        answers.append(((h, w), got))
    for (h, w), got in answers:
        with torch.no_grad():
            x = layers.pool(layers.conv1(torch.zeros(1, 3, h, w)))
            expected = layers.pool(layers.conv2(x))[0].numel()
        if got != expected:
            hint = _diagnose(_FEATURE_SIZE_MISTAKES, answers, _FEATURE_SIZE_HINT)
            raise ExerciseError(
                f"feature_size({h}, {w}) returned {got!r}, expected {expected}. Hint: {hint}."
            )
    _correct("for 224 x 224 inputs the article's head would need 64 * 56 * 56 = 200,704 inputs.")


# Answers students give to exercise 01.2, each with the hint that explains its mistake.
_CONV_PARAMETER_MISTAKES: list[tuple[Callable[..., int], str]] = [
    (lambda ci, co, k: co * ci * k * k, "you counted the weights; add the bias, one number per "
     "output channel"),
    (lambda ci, co, k: co * ci * k * k + ci, "the bias has one number per output channel "
     "(c_out), not per input channel"),
    (lambda ci, co, k: co * ci * (k * k + 1), "the bias has one number per output channel, not "
     "one per k x k kernel"),
    (lambda ci, co, k: (ci + 1) * co * k * k, "the bias is one number per output channel, not a "
     "k x k kernel of its own"),
    (lambda ci, co, k: co * (ci * k + 1), "a k x k kernel has k * k weights, not k"),
    (lambda ci, co, k: co * (ci * 2 * k + 1), "a k x k kernel has k * k weights, not 2 * k"),
    (lambda ci, co, k: co * (ci * (k ^ 2) + 1), "in Python `^` is bitwise XOR (3 ^ 2 == 1): "
     "square with k * k or k ** 2"),
    (lambda ci, co, k: co * (k * k + 1), "every output channel has one k x k kernel per input "
     "channel: multiply by c_in"),
    (lambda ci, co, k: ci * (k * k + 1), "every output channel has its own kernels and bias: "
     "multiply by c_out"),
]
_CONV_PARAMETER_HINT = "every output channel has one k x k kernel per input channel, plus a bias"


def check_conv_parameters(conv_parameters: Callable[[int, int, int], int]) -> None:
    """Exercise 01.2: ``conv_parameters(c_in, c_out, k)`` -> parameters of a k x k Conv2d.

    Compared with the parameters of real ``nn.Conv2d`` layers (c_in != c_out and k > 1 in
    most cases, so that swapped or missing factors show). A wrong answer gets the hint of the
    known mistake (``_CONV_PARAMETER_MISTAKES``) that gives the same values.
    """
    shapes = [(3, 32, 3), (32, 64, 3), (1, 1, 1), (16, 8, 5)]
    # All answers first: the mistake is diagnosed from all of them (one shape can fit several).
    answers: list[tuple[tuple[int, ...], object]] = []
    for c_in, c_out, k in shapes:
        got = _call(conv_parameters, c_in, c_out, k)
        _whole_number(f"conv_parameters({c_in}, {c_out}, {k})", got, "a number of parameters",
                      "use k * k or k ** 2 (math.pow returns a float)")
        answers.append(((c_in, c_out, k), got))
    for (c_in, c_out, k), got in answers:
        expected = sum(p.numel() for p in nn.Conv2d(c_in, c_out, k).parameters())
        if got != expected:
            hint = _diagnose(_CONV_PARAMETER_MISTAKES, answers, _CONV_PARAMETER_HINT)
            raise ExerciseError(
                f"conv_parameters({c_in}, {c_out}, {k}) returned {got!r}, expected {expected}. "
                f"Hint: {hint}."
            )
    _correct("the article's two convolutions hold 896 + 18,496 = 19,392 parameters.")


# --------------------------------------------------------------------------------------------
# Notebook 02: heads and the multi-task model


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
    from ..data.multidigits import MultiDigits

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
    from collections.abc import Mapping

    from ..core.tasks import CLASSIFICATION, Task

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
        out = _call(add_sum, dict(part))
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
    _correct(
        "the 'sum' labels are left + right (19 classes, 0 ... 18), and its loss is the "
        f"cross-entropy of the 'sum' head on them (untrained: near ln(19) = {math.log(19):.2f})."
    )


def check_multitask_score(multitask_score: Callable) -> None:
    """Exercise 02.2: the multi-task score, mean relative change against single-task.

    The cases tell apart the usual slips: the absolute change, dividing by the multi-task
    metric, the wrong sign, the sum instead of the mean, percent instead of a fraction, the
    ratio of the means, and pairing tasks by position instead of by name.
    """
    import numbers

    cases = [
        ({"a": 0.9, "b": 0.8}, {"a": 0.9, "b": 0.8}, 0.0),
        ({"a": 0.99, "b": 0.8}, {"a": 0.9, "b": 0.8}, 0.05),
        ({"a": 0.5, "b": 0.5}, {"a": 1.0, "b": 0.25}, (-0.5 + 1.0) / 2),
        ({"x": 0.6}, {"x": 0.8}, -0.25),
        # three tasks, and the two dicts list them in different orders: match tasks by name
        ({"c": 0.4, "a": 0.6, "b": 0.9}, {"a": 0.5, "b": 0.9, "c": 0.8}, (0.2 + 0 - 0.5) / 3),
    ]
    for multi, single, expected in cases:
        got = _call(multitask_score, multi, single)
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
    _correct("a positive score means sharing helped on average, relative to each task's scale.")


# --------------------------------------------------------------------------------------------
# Notebook 03: augmentation


def check_safe_pipeline(pipeline: object, tasks: object) -> None:
    """Exercise 03.1: a pipeline that the audit allows for every task, with at least one
    geometric and one photometric transform."""
    from ..augment.audit import LabelSafetyError, audit, transform_kinds

    if not isinstance(tasks, dict) or set(tasks) != {"left", "right", "mask"}:
        raise ExerciseError("pass the course's three tasks: mtl.multidigits_tasks()")
    try:
        kinds = {kind for _, kind in transform_kinds(pipeline)}
    except (TypeError, ValueError) as err:
        raise ExerciseError(f"the audit cannot read your pipeline: {err}") from err
    missing = {"geometric", "photometric"} - kinds
    if missing:
        raise ExerciseError(
            f"your pipeline has no {' and no '.join(sorted(missing))} transform; add one "
            "(e.g. v2.RandomAffine and v2.ColorJitter)"
        )
    result = audit(pipeline, tasks)
    if not result.ok:
        bad = "; ".join(f"{r.transform} x {r.task}: {r.reason}" for r in result.problems())
        raise ExerciseError(f"the audit refuses your pipeline: {bad}")
    try:
        from ..augment.sample import SampleTransform
        from ..data.multidigits import MultiDigits

        SampleTransform(pipeline, tasks)(MultiDigits("test", size=1)[0])
    except (LabelSafetyError, TypeError, ValueError, KeyError) as err:
        raise ExerciseError(f"your pipeline fails on a sample: {err}") from err
    _correct("every task's labels stay right under your pipeline.")


def check_mixup_loss(mixup_loss: Callable) -> None:
    """Exercise 03.2: ``mixup_loss(logits, labels, lam, perm)`` -> the mixed cross-entropy."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    for b in (1, 4, 16):
        logits = torch.randn(b, 10, generator=g)
        labels = torch.randint(10, (b,), generator=g)
        lam = torch.rand(b, generator=g)
        perm = torch.randperm(b, generator=g)
        own = F.cross_entropy(logits, labels, reduction="none")
        other = F.cross_entropy(logits, labels[perm], reduction="none")
        expected = float((lam * own + (1 - lam) * other).mean())
        got = _call(mixup_loss, logits, labels, lam, perm)
        if isinstance(got, torch.Tensor) and got.numel() != 1:
            raise ExerciseError(
                f"for a batch of {b}, mixup_loss returned a tensor of shape {tuple(got.shape)}, "
                "expected one number. Hint: the per-sample mixed losses are right to compute; "
                "return their mean over the batch."
            )
        got = float(got) if isinstance(got, (torch.Tensor, float, int)) else got
        if not isinstance(got, float) or abs(got - expected) > 1e-5:
            raise ExerciseError(
                f"for a batch of {b}, mixup_loss returned {got!r}, expected {expected:.5f}. "
                "Hint: each sample's loss is lam * CE(own label) + (1 - lam) * CE(its partner's "
                "label labels[perm]), with the sample's own lam; then the mean over the batch."
            )
    _correct("every classification head mixes its loss with the same per-sample lam.")


# --------------------------------------------------------------------------------------------
# Notebook 04: joint versus alternating

# Plain SGD (no momentum, no weight decay) in the check: a step moves each parameter by exactly
# -lr * its .grad, so a wrong update can be traced back to the gradient that caused it.
_STEP_LR = 0.1


def _sgd_change(
    model: nn.Module, images: torch.Tensor, head: str, labels: torch.Tensor
) -> dict[str, torch.Tensor]:
    """``{parameter name: change}`` of one SGD step on head ``head``'s cross-entropy against
    ``labels`` (N), computed with ``autograd.grad``: ``model`` and its ``.grad`` stay as they
    are. Parameters the loss does not reach are left out (they do not move)."""
    import torch.nn.functional as F

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
    from ..core.models import make_model
    from ..core.tasks import select_tasks
    from ..data.multidigits import multidigits_tasks

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
        _call(alternating_step, model, batch, task, optimizer)
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
    _correct("one forward pass, one backward pass, one task, fresh gradients at every call: "
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
        got = _call(gradient_cosine, x, y)
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
    _correct("parallel gradients give 1, opposite -1, orthogonal 0, and every tensor counts.")


# --------------------------------------------------------------------------------------------
# Notebook 05: loss weighting and gradient combination


def _vec(x: torch.Tensor) -> str:
    """A short readable form of a small vector for a message: [1.0, -0.5, 2.25]."""
    return "[" + ", ".join(f"{v:.4g}" for v in x.tolist()) + "]"


def _mgda_weight(g1: torch.Tensor, g2: torch.Tensor) -> float:
    """The reference answer of exercise 05.1 (0.5 where g1 == g2: every a gives the same point)."""
    diff = g1 - g2
    if float(diff @ diff) == 0.0:
        return 0.5
    return min(1.0, max(0.0, float((g2 - g1) @ g2 / (diff @ diff))))


def check_mgda_two_tasks(mgda_two: Callable) -> None:
    """Exercise 05.1: ``mgda_two(g1, g2)`` -> the weight ``a`` of g1 in the minimum-norm point
    ``a * g1 + (1 - a) * g2`` of the segment between two gradients (a float in [0, 1]).

    ``g1`` and ``g2`` are 1-D float64 tensors of one length D. The cases cover an interior
    minimum far from 0.5 (so that ``0.5`` and ``1 - a`` fail), minima clipped at 1 and at 0
    (so that a missing or one-sided clip fails), random 6-D pairs, and ``g1 == g2``, where
    ``|g1 - g2|^2 = 0`` and every ``a`` is right (so that a division by zero fails).
    """
    f64 = torch.float64
    g = torch.Generator().manual_seed(0)
    cases = [
        ("an interior minimum", torch.tensor([[2.0, 0.0], [-0.5, 1.0]], dtype=f64)),  # a = 0.31
        ("g1 shorter, same direction", torch.tensor([[1.0, 0.0], [3.0, 0.0]], dtype=f64)),  # 1
        ("g2 the minimum-norm point", torch.tensor([[3.0, 1.0], [1.0, 0.0]], dtype=f64)),  # 0
        *(("random gradients", torch.randn(2, 6, generator=g, dtype=f64)) for _ in range(3)),
        ("g1 == g2", torch.tensor([[1.0, 2.0], [1.0, 2.0]], dtype=f64)),
    ]
    hint = ("Hint: minimise |a g1 + (1 - a) g2|^2 over a: the derivative vanishes at "
            "a = (g2 - g1) . g2 / |g1 - g2|^2; then clip a to [0, 1].")
    for what, G in cases:
        g1, g2 = G[0], G[1]
        expected = _mgda_weight(g1, g2)
        where = f"for g1={_vec(g1)}, g2={_vec(g2)} ({what})"
        try:
            got = _call(mgda_two, g1.clone(), g2.clone())
        except ExerciseError as err:
            if what != "g1 == g2":
                raise
            raise ExerciseError(
                f"{err}. Hint: here g1 == g2, so |g1 - g2|^2 = 0 and every a gives the same "
                "point: return any a in [0, 1] (0.5, say) instead of dividing by zero."
            ) from err
        if isinstance(got, torch.Tensor) and got.numel() != 1:
            raise ExerciseError(
                f"{where} you returned a tensor of shape {tuple(got.shape)}; return the weight "
                "a of g1 (one number), not the point a g1 + (1 - a) g2"
            )
        if isinstance(got, torch.Tensor) or (isinstance(got, (int, float))
                                             and not isinstance(got, bool)):
            got = float(got)
        else:
            raise ExerciseError(f"{where} you returned {got!r}; expected a float a in [0, 1]")
        if math.isnan(got):
            extra = (" |g1 - g2|^2 = 0 here: every a gives the same point, so return any a in "
                     "[0, 1] (0.5, say) instead of dividing by zero." if what == "g1 == g2"
                     else "")
            raise ExerciseError(f"{where} you returned nan.{extra} {hint}")
        if not 0.0 <= got <= 1.0:
            raise ExerciseError(
                f"{where} you returned {got:.4f}, outside [0, 1]: the point must lie on the "
                f"segment between g1 and g2 (the expected weight is {expected:.4f}). Clip the "
                "unconstrained minimiser to [0, 1] (at both ends)."
            )
        point, best = got * g1 + (1 - got) * g2, expected * g1 + (1 - expected) * g2
        if float(point.norm()) - float(best.norm()) > 1e-6 * (1 + float(best.norm())):
            if abs(got - (1 - expected)) < 1e-6:
                problem = ("that is 1 - a, the weight of g2: the exercise asks for a, the weight "
                           "of g1 (check which of g1, g2 your formula's numerator uses)")
            elif got == 0.5:
                problem = "0.5 is the answer only where |g1| = |g2|"
            else:
                problem = "that point of the segment is longer than the shortest one"
            raise ExerciseError(
                f"{where} you returned {got:.4f}, expected {expected:.4f}: {problem}. {hint}"
            )
    _correct("the two-task MGDA weight has a closed form: no solver needed.")


def check_pcgrad_projection(project: Callable) -> None:
    """Exercise 05.2: ``project(g1, g2)`` -> g1 with its component against g2 removed when the
    two conflict (negative inner product), else g1 unchanged.

    ``g1`` and ``g2`` are 1-D float64 tensors of one length; the answer is a tensor of their
    shape. The cases include conflicting and non-conflicting pairs (so that a projection made
    always, or under the wrong sign of the condition, fails), gradients of different lengths,
    none of unit length (so that projecting onto g1, or dividing by |g2| instead of |g2|^2,
    fails), and orthogonal gradients (either branch is right there).
    """
    f64 = torch.float64
    g = torch.Generator().manual_seed(1)
    pairs = [
        torch.tensor([[1.0, 0.5, 0.0], [-2.0, 1.0, 1.0]], dtype=f64),  # conflict: dot = -1.5
        torch.tensor([[1.0, 2.0, 0.0], [0.5, 1.0, 3.0]], dtype=f64),  # no conflict: dot = 2.5
        torch.tensor([[3.0, 0.0, 1.0], [-0.2, 0.4, 0.1]], dtype=f64),  # conflict, small g2
        torch.tensor([[1.0, 1.0, 0.0], [1.0, -1.0, 2.0]], dtype=f64),  # orthogonal: dot = 0
    ]
    while len(pairs) < 8:  # random pairs, 4 conflicting and 4 not in all
        G = 2 * torch.randn(2, 5, generator=g, dtype=f64)
        conflicting = sum(float(p[0] @ p[1]) < 0 for p in pairs)
        if (float(G[0] @ G[1]) < 0) == (conflicting < 4):
            pairs.append(G)
    hint = ("Hint: only when g1 . g2 < 0, subtract from g1 its component along g2, "
            "(g1 . g2 / |g2|^2) g2; otherwise return g1 as it is.")
    for G in pairs:
        g1, g2 = G[0], G[1]
        dot = float(g1 @ g2)
        along = dot / float(g2 @ g2) * g2
        expected = g1 - along if dot < 0 else g1
        where = f"project({_vec(g1)}, {_vec(g2)}) (g1 . g2 = {dot:.4g})"
        got = _call(project, g1.clone(), g2.clone())
        if not isinstance(got, torch.Tensor) or got.shape != g1.shape:
            what = (f"a tensor of shape {tuple(got.shape)}" if isinstance(got, torch.Tensor)
                    else f"a {type(got).__name__}")
            raise ExerciseError(
                f"{where} returned {what}; expected a tensor of g1's shape {tuple(g1.shape)}"
            )
        got = got.detach().to(f64)
        if torch.allclose(got, expected, atol=1e-6):
            continue
        def close(v: torch.Tensor, got: torch.Tensor = got) -> bool:
            return torch.allclose(got, v, atol=1e-6)

        if dot >= 0:
            problem = ("the gradients do not conflict (g1 . g2 >= 0), so g1 must come back "
                       "unchanged: project only when g1 . g2 < 0")
        elif close(g1):
            problem = "the gradients conflict (g1 . g2 < 0), but you returned g1 unchanged"
        elif close(g1 - dot / float(g1 @ g1) * g1):
            problem = "you removed g1's component along g1 itself; remove its component along g2"
        elif close(g1 - dot / float(g2.norm()) * g2):
            problem = ("you divided by |g2| once; the component of g1 along g2 is (g1 . u) u "
                       "with the unit vector u = g2 / |g2|, that is (g1 . g2 / |g2|^2) g2")
        elif close(g1 + along):
            problem = "you added the component along g2; subtract it (g1 - ...)"
        elif close(along):
            problem = "you returned the component along g2; return g1 minus it"
        else:
            problem = (f"after the projection, g1' . g2 should be 0; yours gives "
                       f"{float(got @ g2):.4g}")
        raise ExerciseError(
            f"{where} returned {_vec(got)}, expected {_vec(expected)}: {problem}. {hint}"
        )
    _correct("after the projection, the conflicting component is gone: g1' . g2 = 0.")
