"""Notebook 04's exercise checks: the right answers pass, the answers students get wrong fail
with a message that names the mistake."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from mtlaug_lib import exercises

# ---- exercise 04.1: alternating_step(model, batch, task, optimizer) --------------------------


def step_right(model, batch, task, optimizer):
    optimizer.zero_grad()
    loss = F.cross_entropy(model.heads[task](model.backbone(batch["image"])), batch[task])
    loss.backward()
    optimizer.step()


def step_criterion_module(model, batch, task, optimizer):
    """Also right: nn.CrossEntropyLoss and model.zero_grad() instead of the functional forms."""
    model.zero_grad()
    features = model.backbone(batch["image"])
    torch.nn.CrossEntropyLoss()(model.heads[task](features), batch[task]).backward()
    optimizer.step()


def step_no_zero_grad(model, batch, task, optimizer):
    loss = F.cross_entropy(model.heads[task](model.backbone(batch["image"])), batch[task])
    loss.backward()
    optimizer.step()


def step_zero_grad_at_end(model, batch, task, optimizer):
    """Zeroes after the step: the gradients already in .grad on entry still count."""
    loss = F.cross_entropy(model.heads[task](model.backbone(batch["image"])), batch[task])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def step_all_heads_summed(model, batch, task, optimizer):
    optimizer.zero_grad()
    outputs = model(batch["image"])
    sum(F.cross_entropy(outputs[t], batch[t]) for t in outputs).backward()
    optimizer.step()


def step_all_heads_run(model, batch, task, optimizer):
    """Right loss, but every head runs (model(x) computes every task's output)."""
    optimizer.zero_grad()
    F.cross_entropy(model(batch["image"])[task], batch[task]).backward()
    optimizer.step()


def step_wrong_labels(model, batch, task, optimizer):
    optimizer.zero_grad()
    loss = F.cross_entropy(model.heads[task](model.backbone(batch["image"])), batch["left"])
    loss.backward()
    optimizer.step()


def step_backward_twice(model, batch, task, optimizer):
    optimizer.zero_grad()
    loss = F.cross_entropy(model.heads[task](model.backbone(batch["image"])), batch[task])
    loss.backward(retain_graph=True)
    loss.backward()
    optimizer.step()


def step_no_step(model, batch, task, optimizer):
    optimizer.zero_grad()
    F.cross_entropy(model.heads[task](model.backbone(batch["image"])), batch[task]).backward()


def step_zero_grad_before_step(model, batch, task, optimizer):
    F.cross_entropy(model.heads[task](model.backbone(batch["image"])), batch[task]).backward()
    optimizer.zero_grad()
    optimizer.step()


def step_summed_loss(model, batch, task, optimizer):
    """reduction='sum': 8 times the mean's gradient."""
    optimizer.zero_grad()
    out = model.heads[task](model.backbone(batch["image"]))
    F.cross_entropy(out, batch[task], reduction="sum").backward()
    optimizer.step()


def step_wrong_key(model, batch, task, optimizer):
    optimizer.zero_grad()
    out = model.heads[task](model.backbone(batch["image"]))
    F.cross_entropy(out, batch["label"]).backward()
    optimizer.step()


@pytest.mark.parametrize("answer", [step_right, step_criterion_module])
def test_alternating_step_accepts_right_answers(
    answer: Callable, capsys: pytest.CaptureFixture[str]
) -> None:
    exercises.check_alternating_step(answer)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (step_no_zero_grad, r"Hint: call optimizer\.zero_grad\(\) before loss\.backward\(\)"),
        (step_zero_grad_at_end, r"already in \.grad before your step"),
        (step_all_heads_summed, r"ran the heads \['left', 'right'\]"),
        (step_all_heads_run, r"model.heads\['left'\] only"),
        (step_wrong_labels, "call 2 of 4 .*labels of task 'left'"),
        (step_backward_twice, "twice the right one"),
        (step_no_step, r"unchanged\. Hint: call optimizer\.step\(\)"),
        (step_zero_grad_before_step, "not between the backward and the step"),
        (step_summed_loss, "the mean over the batch"),
        (step_wrong_key, "raised KeyError"),
    ],
)
def test_alternating_step_rejects_wrong_answers(answer: Callable, message: str) -> None:
    with pytest.raises(exercises.ExerciseError, match=message):
        exercises.check_alternating_step(answer)


# ---- exercise 04.2: gradient_cosine(grads_a, grads_b) -----------------------------------------


def flat(grads):
    return torch.cat([g.flatten() for g in grads])


def cosine_right(a, b):
    a, b = flat(a), flat(b)
    return float(a @ b / (a.norm() * b.norm()))


def cosine_library(a, b):
    """Also right: torch's cosine_similarity on the flattened lists, returned as a 0-d tensor."""
    return F.cosine_similarity(flat(a), flat(b), dim=0)


def cosine_dot_only(a, b):
    return float(flat(a) @ flat(b))


def per_tensor_cosines(a, b):
    return [F.cosine_similarity(x.flatten(), y.flatten(), dim=0) for x, y in zip(a, b, strict=True)]


def cosine_per_tensor_mean(a, b):
    cosines = per_tensor_cosines(a, b)
    return float(sum(cosines) / len(cosines))


def cosine_first_tensor(a, b):
    x, y = a[0].flatten(), b[0].flatten()
    return float(x @ y / (x.norm() * y.norm()))


def cosine_squared_norms(a, b):
    a, b = flat(a), flat(b)
    return float(a @ b / (a.norm() ** 2 * b.norm() ** 2))


def cosine_abs(a, b):
    return abs(cosine_right(a, b))


def cosine_per_tensor_list(a, b):
    return per_tensor_cosines(a, b)


def cosine_in_place(a, b):
    for g in a + b:
        g /= g.norm()
    return float(flat(a) @ flat(b) / (flat(a).norm() * flat(b).norm()))


def cosine_nan(a, b):
    return float("nan")


@pytest.mark.parametrize("answer", [cosine_right, cosine_library])
def test_gradient_cosine_accepts_right_answers(
    answer: Callable, capsys: pytest.CaptureFixture[str]
) -> None:
    exercises.check_gradient_cosine(answer)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (cosine_dot_only, r"parallel gradients .* divide a \. b by \|a\| \|b\|"),
        (cosine_per_tensor_mean, "not the mean of per-tensor cosines"),
        (cosine_first_tensor, "not the first tensor alone"),
        (cosine_squared_norms, "not the squared norms"),
        (cosine_abs, r"opposite gradients .*\(no abs\)"),
        (cosine_per_tensor_list, "expected one number"),
        (cosine_in_place, "changed the tensors it was given"),
        (cosine_nan, "returned nan"),
    ],
)
def test_gradient_cosine_rejects_wrong_answers(answer: Callable, message: str) -> None:
    with pytest.raises(exercises.ExerciseError, match=message):
        exercises.check_gradient_cosine(answer)
