"""Checks for the notebooks' exercises: each says right, or what is wrong and a hint.

A check prints one line starting with ``Correct`` when the answer is right, and raises
``ExerciseError`` (an ``AssertionError``) with a helpful message when it is not, so a wrong
answer stops "Run all" at the exercise, as a failing test would.
"""

from __future__ import annotations

import math
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


def check_feature_size(feature_size: Callable[[int, int], int]) -> None:
    """Exercise 01.1: ``feature_size(height, width)`` -> features the seed's extractor gives.

    Compared against the real ``FeatureExtractor`` layers on inputs of several sizes, odd
    ones included (2x2 max-pooling floors: 15 -> 7).
    """
    from .models import FeatureExtractor

    layers = FeatureExtractor()
    for h, w in [(28, 28), (32, 32), (224, 224), (30, 30), (29, 35), (8, 12)]:
        with torch.no_grad():
            x = torch.zeros(1, 3, h, w)
            x = layers.pool(layers.conv1(x))
            expected = layers.pool(layers.conv2(x))[0].numel()
        got = _call(feature_size, h, w)
        if got != expected:
            raise ExerciseError(
                f"feature_size({h}, {w}) returned {got!r}, expected {expected}. Hint: the 3x3 "
                "convolutions with padding 1 keep the size; each 2x2 max-pool halves it, "
                "rounding down; the last convolution has 64 channels."
            )
    _correct("for 224 x 224 inputs the seed's head would need 64 * 56 * 56 = 200,704 inputs.")


def check_conv_parameters(conv_parameters: Callable[[int, int, int], int]) -> None:
    """Exercise 01.2: ``conv_parameters(c_in, c_out, k)`` -> parameters of a k x k Conv2d."""
    for c_in, c_out, k in [(3, 32, 3), (32, 64, 3), (1, 1, 1), (16, 8, 5)]:
        expected = sum(p.numel() for p in nn.Conv2d(c_in, c_out, k).parameters())
        got = _call(conv_parameters, c_in, c_out, k)
        if got != expected:
            raise ExerciseError(
                f"conv_parameters({c_in}, {c_out}, {k}) returned {got!r}, expected {expected}. "
                "Hint: every output channel has one k x k kernel per input channel, plus a bias."
            )
    _correct("the seed's two convolutions hold 896 + 18,496 = 19,392 parameters.")


# --------------------------------------------------------------------------------------------
# Notebook 02: heads and the multi-task model


def check_sum_task(task: object, model: object, losses: object) -> None:
    """Exercise 02.1: a fourth task, the sum of the two digits: declared, given a head, and its
    loss computed on a batch that carries ``sum`` labels.
    """
    from .tasks import CLASSIFICATION, Task

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
    heads = getattr(model, "heads", {})
    if set(heads) != {"left", "right", "mask", "sum"}:
        raise ExerciseError(
            f"the model has heads {sorted(heads)}, expected the three course tasks plus 'sum'"
        )
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 28, 28, device=device))
    if tuple(out["sum"].shape) != (2, 19):
        raise ExerciseError(f"the 'sum' head gives {tuple(out['sum'].shape)}, expected (B, 19)")
    if not isinstance(losses, dict) or not {"sum", "total"} <= set(losses):
        raise ExerciseError("'losses' should be the dict that MultiTaskLoss returned")
    value = float(losses["sum"].detach())
    # A freshly initialised head predicts roughly uniformly: its cross-entropy is near ln(19).
    if not 0.5 * math.log(19) < value < 2 * math.log(19):
        raise ExerciseError(
            f"the 'sum' loss is {value:.3f}, expected about ln(19) = {math.log(19):.3f} for an "
            "untrained head. Hint: are the labels left + right?"
        )
    _correct(f"an untrained 19-way head has a loss near ln(19) = {math.log(19):.2f}.")


def check_multitask_score(multitask_score: Callable) -> None:
    """Exercise 02.2: the multi-task score, mean relative change against single-task."""
    cases = [
        ({"a": 0.9, "b": 0.8}, {"a": 0.9, "b": 0.8}, 0.0),
        ({"a": 0.99, "b": 0.8}, {"a": 0.9, "b": 0.8}, 0.05),
        ({"a": 0.5, "b": 0.5}, {"a": 1.0, "b": 0.25}, (-0.5 + 1.0) / 2),
        ({"x": 0.6}, {"x": 0.8}, -0.25),
    ]
    for multi, single, expected in cases:
        got = _call(multitask_score, multi, single)
        if not isinstance(got, (int, float)) or abs(got - expected) > 1e-9:
            raise ExerciseError(
                f"multitask_score({multi}, {single}) returned {got!r}, expected {expected:.4f}. "
                "Hint: for each task, (multi - single) / single; then the mean over tasks."
            )
    _correct("a positive score means sharing helped on average, relative to each task's scale.")


# --------------------------------------------------------------------------------------------
# Notebook 03: augmentation


def check_safe_pipeline(pipeline: object, tasks: object) -> None:
    """Exercise 03.1: a pipeline that the audit allows for every task, with at least one
    geometric and one photometric transform."""
    from .audit import LabelSafetyError, audit, transform_kinds

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
        from .augment import SampleTransform
        from .data import MultiDigits

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


def check_alternating_step(alternating_step: Callable) -> None:
    """Exercise 04.1: ``alternating_step(model, batch, task, optimizer)`` updates the model on
    one task, running only the backbone and that task's head."""
    import torch.nn.functional as F

    from .models import make_model
    from .tasks import multidigits_tasks, select_tasks

    tasks = select_tasks(multidigits_tasks(), ["left", "right"])
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.rand(8, 3, 28, 28, generator=g),
             "left": torch.randint(10, (8,), generator=g),
             "right": torch.randint(10, (8,), generator=g)}
    for task in ("left", "right"):
        theirs = make_model(tasks, seed=1)
        ours = make_model(tasks, seed=1)
        calls: list[str] = []
        for name, head in theirs.heads.items():
            head.register_forward_hook(lambda *args, name=name, calls=calls: calls.append(name))
        _call(alternating_step, theirs, batch, task, torch.optim.SGD(theirs.parameters(), lr=0.1))
        opt = torch.optim.SGD(ours.parameters(), lr=0.1)
        F.cross_entropy(ours.heads[task](ours.backbone(batch["image"])), batch[task]).backward()
        opt.step()
        if calls != [task]:
            raise ExerciseError(
                f"for task {task!r} your step ran the heads {calls}; run the backbone, then only "
                f"model.heads[{task!r}]"
            )
        for (name, p), q in zip(theirs.named_parameters(), ours.parameters(), strict=True):
            if not torch.allclose(p, q, atol=1e-6):
                raise ExerciseError(
                    f"after your step on {task!r}, parameter {name} differs from one SGD step "
                    "on that task's cross-entropy. Hint: zero the gradients, forward, loss, "
                    "backward, optimizer.step()."
                )
    _correct("one forward pass, one backward pass, one task: that is an alternating step.")


def check_gradient_cosine(gradient_cosine: Callable) -> None:
    """Exercise 04.2: the cosine similarity of two gradients given as lists of tensors."""
    g = torch.Generator().manual_seed(0)
    a = [torch.randn(3, 4, generator=g), torch.randn(5, generator=g)]
    cases = [
        (a, [t.clone() for t in a], 1.0),
        (a, [-2 * t for t in a], -1.0),
        ([torch.tensor([1.0, 0.0])], [torch.tensor([0.0, 3.0])], 0.0),
    ]
    b = [torch.randn(3, 4, generator=g), torch.randn(5, generator=g)]
    flat_a, flat_b = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
    cases.append((a, b, float(flat_a @ flat_b / (flat_a.norm() * flat_b.norm()))))
    for x, y, expected in cases:
        got = _call(gradient_cosine, x, y)
        got = float(got) if isinstance(got, (torch.Tensor, int, float)) else got
        if not isinstance(got, float) or abs(got - expected) > 1e-5:
            raise ExerciseError(
                f"gradient_cosine returned {got!r}, expected {expected:.4f}. Hint: flatten and "
                "concatenate each list into one vector, then a . b / (|a| |b|)."
            )
    _correct("parallel gradients give 1, opposite -1, orthogonal 0.")


# --------------------------------------------------------------------------------------------
# Notebook 05: loss weighting and gradient combination


def check_mgda_two_tasks(mgda_two: Callable) -> None:
    """Exercise 05.1: ``mgda_two(g1, g2)`` -> the weight ``a`` of g1 in the minimum-norm point
    ``a * g1 + (1 - a) * g2`` of the segment between two gradients (a float in [0, 1])."""
    from .gradients import mgda

    g = torch.Generator().manual_seed(0)
    cases = [torch.randn(2, 6, generator=g, dtype=torch.float64) for _ in range(4)]
    cases.append(torch.tensor([[1.0, 0.0], [3.0, 0.0]], dtype=torch.float64))  # parallel
    cases.append(torch.tensor([[1.0, 2.0], [1.0, 2.0]], dtype=torch.float64))  # equal
    for G in cases:
        _, w = mgda(G)
        got = _call(mgda_two, G[0].clone(), G[1].clone())
        got = float(got) if isinstance(got, (torch.Tensor, int, float)) else got
        point = got * G[0] + (1 - got) * G[1] if isinstance(got, float) else None
        best = w[0] * G[0] + w[1] * G[1]
        if point is None or not 0 <= got <= 1 or float(point.norm() - best.norm()) > 1e-6:
            raise ExerciseError(
                f"for g1={G[0].tolist()[:3]}..., g2={G[1].tolist()[:3]}... you returned {got!r}; "
                f"the minimum-norm weight is {float(w[0]):.4f}. Hint: minimise "
                "|a g1 + (1-a) g2|^2 over a: a = (g2 - g1) . g2 / |g1 - g2|^2, clipped to [0, 1]."
            )
    _correct("the two-task MGDA weight has a closed form: no solver needed.")


def check_pcgrad_projection(project: Callable) -> None:
    """Exercise 05.2: ``project(g1, g2)`` -> g1 with its component against g2 removed when the
    two conflict (negative inner product), else g1 unchanged."""
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        g1, g2 = torch.randn(5, generator=g), torch.randn(5, generator=g)
        dot = g1 @ g2
        expected = g1 - dot / (g2 @ g2) * g2 if dot < 0 else g1
        got = _call(project, g1.clone(), g2.clone())
        if not isinstance(got, torch.Tensor) or got.shape != g1.shape or not torch.allclose(
            got, expected, atol=1e-5
        ):
            raise ExerciseError(
                f"project({g1.tolist()}, {g2.tolist()}) returned {got!r}, expected "
                f"{expected.tolist()}. Hint: only when g1 . g2 < 0, subtract "
                "(g1 . g2 / |g2|^2) g2 from g1."
            )
    _correct("after the projection, the conflicting component is gone: g1' . g2 = 0.")
