"""The multi-task loss: per-task losses, their weighted total, and clear errors on bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mtlaug_lib.core.losses import MultiTaskLoss, check_weights
from mtlaug_lib.data.multidigits import multidigits_tasks


@pytest.fixture
def outputs_and_batch() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    outputs = {
        "left": torch.randn(4, 10, generator=g, requires_grad=True),
        "right": torch.randn(4, 10, generator=g, requires_grad=True),
        "mask": torch.randn(4, 3, 28, 28, generator=g, requires_grad=True),
    }
    batch = {
        "image": torch.rand(4, 3, 28, 28, generator=g),
        "left": torch.randint(10, (4,), generator=g),
        "right": torch.randint(10, (4,), generator=g),
        "mask": torch.randint(3, (4, 28, 28), generator=g).to(torch.uint8),
    }
    return outputs, batch


def test_per_task_losses_and_weighted_total(outputs_and_batch) -> None:
    outputs, batch = outputs_and_batch
    weights = {"left": 0.5, "right": 2.0, "mask": 0.0}
    losses = MultiTaskLoss(multidigits_tasks(), weights)(outputs, batch)
    assert set(losses) == {"left", "right", "mask", "total"}
    for t in ("left", "right", "mask"):
        assert losses[t].ndim == 0
        assert torch.allclose(losses[t], F.cross_entropy(outputs[t], batch[t].long()))
    expected = sum(weights[t] * losses[t] for t in weights)
    assert torch.allclose(losses["total"], expected)
    # The total's gradient reaches each output in proportion to its weight.
    losses["total"].backward()
    assert outputs["mask"].grad.abs().sum() == 0
    assert outputs["right"].grad.abs().sum() > 0


def test_default_weights_are_one_and_scaling_weights_scales_the_total(outputs_and_batch) -> None:
    outputs, batch = outputs_and_batch
    tasks = multidigits_tasks()
    plain = MultiTaskLoss(tasks)(outputs, batch)
    assert torch.allclose(plain["total"], plain["left"] + plain["right"] + plain["mask"])
    tripled = MultiTaskLoss(tasks, {t: 3.0 for t in tasks})(outputs, batch)
    assert torch.allclose(tripled["total"], 3 * plain["total"])


def test_extra_batch_entries_are_ignored_and_task_order_does_not_matter(outputs_and_batch):
    outputs, batch = outputs_and_batch
    tasks = multidigits_tasks()
    reordered = {t: tasks[t] for t in ("mask", "right", "left")}
    a = MultiTaskLoss(tasks)(outputs, {**batch, "sources": torch.zeros(4, 2)})
    b = MultiTaskLoss(reordered)(outputs, batch)
    assert all(torch.allclose(a[k], b[k]) for k in a)


def test_missing_labels_name_the_task(outputs_and_batch) -> None:
    outputs, batch = outputs_and_batch
    del batch["right"]
    with pytest.raises(KeyError, match=r"task 'right' has no labels in the batch"):
        MultiTaskLoss(multidigits_tasks())(outputs, batch)


def test_missing_output_names_the_task(outputs_and_batch) -> None:
    outputs, batch = outputs_and_batch
    del outputs["mask"]
    with pytest.raises(KeyError, match=r"task 'mask' has no output in the model's dict"):
        MultiTaskLoss(multidigits_tasks())(outputs, batch)


def test_output_for_an_unknown_task(outputs_and_batch) -> None:
    outputs, batch = outputs_and_batch
    outputs["sum"] = torch.zeros(4, 19)
    with pytest.raises(KeyError, match=r"output\(s\) for unknown task\(s\) \['sum'\]"):
        MultiTaskLoss(multidigits_tasks())(outputs, batch)


@pytest.mark.parametrize(
    ("task", "bad", "error", "pattern"),
    [
        ("left", torch.tensor([0, 1, 2, 10]), ValueError, r"task 'left': labels range over"),
        ("mask", torch.full((4, 28, 28), 3), ValueError, r"task 'mask': labels range over"),
        ("right", torch.tensor([0.0, 1.0, 2.0, 3.0]), TypeError, r"task 'right': labels have"),
        ("mask", torch.zeros(4, 14, 14, dtype=torch.int64), ValueError,
         r"task 'mask': labels have shape \(4, 14, 14\), expected \(4, 28, 28\)"),
    ],
)
def test_bad_labels_name_the_task(outputs_and_batch, task, bad, error, pattern) -> None:
    outputs, batch = outputs_and_batch
    batch[task] = bad
    with pytest.raises(error, match=pattern):
        MultiTaskLoss(multidigits_tasks())(outputs, batch)


def test_empty_tasks() -> None:
    with pytest.raises(ValueError, match="argument 'tasks' is empty"):
        MultiTaskLoss({})


def test_check_weights_normalises_good_weights() -> None:
    tasks = multidigits_tasks()
    assert check_weights(None, tasks) == {"left": 1.0, "right": 1.0, "mask": 1.0}
    got = check_weights({"mask": torch.tensor(0.25), "left": 2, "right": 0}, tasks)
    assert got == {"left": 2.0, "right": 0.0, "mask": 0.25}
    assert all(type(v) is float for v in got.values())
    assert list(got) == list(tasks)  # in the tasks' order


@pytest.mark.parametrize(
    ("weights", "error", "pattern"),
    [
        ({"left": 1, "right": 1}, ValueError,
         r"'weights' names tasks \['left', 'right'\], expected exactly "
         r"\['left', 'mask', 'right'\]"),
        ({"left": 1, "right": 1, "mask": 1, "sum": 1}, ValueError, r"expected exactly"),
        ({"left": 1, "right": -0.5, "mask": 1}, ValueError,
         r"the weight of task 'right' is -0.5, expected a finite number >= 0"),
        ({"left": math.nan, "right": 1, "mask": 1}, ValueError, r"task 'left' is nan"),
        ({"left": 1, "right": 1, "mask": math.inf}, ValueError, r"task 'mask' is inf"),
        ({"left": 1, "right": "1", "mask": 1}, ValueError, r"task 'right' is '1'"),
        ({"left": 0, "right": 0.0, "mask": 0}, ValueError, r"every weight is 0"),
        ([1, 1, 1], TypeError, r"argument 'weights' is a list, expected a dict"),
    ],
)
def test_check_weights_errors(weights, error, pattern) -> None:
    with pytest.raises(error, match=pattern):
        check_weights(weights, multidigits_tasks())
    with pytest.raises(error, match=pattern):
        MultiTaskLoss(multidigits_tasks(), weights)
