"""Tasks, declared once: validation, label checks, metrics against hand computations, the
multi-task score, and the heads that ``make_model`` builds from them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mtlaug_lib.core.models import Classifier, DenseHead, MultiTaskModel, make_model
from mtlaug_lib.core.tasks import (
    CLASSIFICATION,
    SEGMENTATION,
    TRANSFORM_KINDS,
    LabelEffect,
    Task,
    TaskMeter,
    multitask_score,
    select_tasks,
)
from mtlaug_lib.data.multidigits import multidigits_tasks


def logits_for(pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Logits whose argmax over dim 1 is ``pred`` (B or B x H x W)."""
    out = F.one_hot(pred, num_classes).float()
    return out.movedim(-1, 1) if pred.ndim > 1 else out


# ---- Task declaration -----------------------------------------------------------------------


def test_task_fills_default_effects_and_keeps_overrides() -> None:
    seg = Task("mask", SEGMENTATION, 3, label_effects={"horizontal_flip": "breaks"})
    assert set(seg.label_effects) == set(TRANSFORM_KINDS)
    assert seg.label_effects["horizontal_flip"] is LabelEffect.BREAKS  # the string is converted
    assert seg.label_effects["geometric"] is LabelEffect.MOVES  # default for a mask
    cls = Task("digit", CLASSIFICATION, 10)
    assert cls.label_effects["geometric"] is LabelEffect.KEEPS
    assert cls.label_effects["mixing"] is LabelEffect.MIXES
    assert (cls.primary_metric, seg.primary_metric) == ("accuracy", "miou")


def test_multidigits_tasks_a_flip_breaks_the_digits_and_permutes_the_mask() -> None:
    tasks = multidigits_tasks()
    assert list(tasks) == ["left", "right", "mask"]
    assert [t.name for t in tasks.values()] == list(tasks)
    assert (tasks["left"].num_classes, tasks["mask"].num_classes) == (10, 3)
    effects = [t.label_effects["horizontal_flip"] for t in tasks.values()]
    assert effects == [LabelEffect.BREAKS, LabelEffect.BREAKS, LabelEffect.PERMUTES]
    assert tasks["left"].region == ("mask", 1) and tasks["right"].region == ("mask", 2)
    assert all(t.input_size == (28, 28) for t in tasks.values())
    assert all(len(t.class_names) == t.num_classes for t in tasks.values())


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"kind": "regression"}, r"task 'x': kind is 'regression', expected one of"),
        ({"num_classes": 1}, r"task 'x': num_classes is 1, expected an int >= 2"),
        ({"num_classes": 2.0}, r"num_classes is 2.0"),
        ({"num_classes": True}, r"num_classes is True"),
        ({"class_names": ("a", "b")}, r"task 'x': 2 class names for 3 classes"),
        ({"label_effects": {"rotate": LabelEffect.KEEPS}},
         r"task 'x': unknown transform kind 'rotate', expected one of"),
        ({"label_effects": {"geometric": "flips"}}, r"flips"),
        ({"name": "my task"}, r"task name 'my task' must be a valid identifier"),
        ({"name": 3}, r"task name 3 must be"),
    ],
)
def test_task_validation(kwargs: dict, pattern: str) -> None:
    args = {"name": "x", "kind": CLASSIFICATION, "num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        Task(**args)


# ---- labels and loss ------------------------------------------------------------------------


def test_check_labels_accepts_good_labels_of_any_integer_dtype() -> None:
    cls, seg = Task("digit", CLASSIFICATION, 10), Task("mask", SEGMENTATION, 3)
    for dtype in (torch.int64, torch.int32, torch.uint8):
        cls.check_labels(torch.zeros(4, 10), torch.tensor([0, 9, 3, 3], dtype=dtype))
        seg.check_labels(torch.zeros(2, 3, 5, 5), torch.full((2, 5, 5), 2, dtype=dtype))
    cls.check_labels(torch.zeros(0, 10), torch.zeros(0, dtype=torch.int64))  # empty batch


@pytest.mark.parametrize(
    ("kind", "output", "labels", "error", "pattern"),
    [
        (CLASSIFICATION, (4, 10), torch.tensor([0, 1, 10, 2]), ValueError,
         r"task 't': labels range over \[0, 10\], expected classes in \[0, 9\]"),
        (CLASSIFICATION, (4, 10), torch.tensor([0, -1, 1, 2]), ValueError,
         r"task 't': labels range over \[-1, 2\]"),
        (CLASSIFICATION, (4, 10), torch.zeros(3, dtype=torch.int64), ValueError,
         r"task 't': labels have shape \(3,\), expected \(4,\)"),
        (CLASSIFICATION, (4, 10), torch.zeros(4, 1, dtype=torch.int64), ValueError,
         r"task 't': labels have shape \(4, 1\)"),
        (CLASSIFICATION, (4, 10), torch.zeros(4), TypeError,
         r"task 't': labels have dtype torch.float32, expected integer class indices"),
        (CLASSIFICATION, (4, 5), torch.zeros(4, dtype=torch.int64), ValueError,
         r"task 't': the output has shape \(4, 5\), expected B x C with C = 10"),
        (CLASSIFICATION, (4, 10, 2, 2), torch.zeros(4, 2, 2, dtype=torch.int64), ValueError,
         r"task 't': the output has shape \(4, 10, 2, 2\), expected B x C "),
        (SEGMENTATION, (2, 10, 4, 4), torch.zeros(2, 3, 4, dtype=torch.int64), ValueError,
         r"task 't': labels have shape \(2, 3, 4\), expected \(2, 4, 4\)"),
        (SEGMENTATION, (2, 10), torch.zeros(2, dtype=torch.int64), ValueError,
         r"task 't': the output has shape \(2, 10\), expected B x C x H x W"),
    ],
)
def test_check_labels_errors_name_the_task(kind, output, labels, error, pattern) -> None:
    with pytest.raises(error, match=pattern):
        Task("t", kind, 10).check_labels(torch.zeros(output), labels)


def test_loss_is_the_mean_cross_entropy_over_samples_and_pixels() -> None:
    g = torch.Generator().manual_seed(0)
    out = torch.randn(2, 3, 4, 4, generator=g)
    labels = torch.randint(3, (2, 4, 4), generator=g)
    logp = out.log_softmax(1)
    by_hand = -sum(
        logp[b, labels[b, i, j], i, j] for b in range(2) for i in range(4) for j in range(4)
    ) / 32
    assert torch.allclose(Task("m", SEGMENTATION, 3).loss(out, labels), by_hand)
    # uint8 labels (as masks are stored) give the same loss.
    assert torch.allclose(Task("m", SEGMENTATION, 3).loss(out, labels.to(torch.uint8)), by_hand)


# ---- TaskMeter ------------------------------------------------------------------------------


def test_accuracy_and_mean_loss_by_hand() -> None:
    meter = Task("digit", CLASSIFICATION, 4).meter()
    meter.update(logits_for(torch.tensor([0, 2, 2]), 4), torch.tensor([0, 1, 2]), loss=0.5)
    meter.update(logits_for(torch.tensor([3]), 4), torch.tensor([3]), loss=2.0)
    got = meter.compute()
    assert got["accuracy"] == pytest.approx(3 / 4)  # one of four wrong
    assert got["loss"] == pytest.approx((3 * 0.5 + 1 * 2.0) / 4)  # per sample, not per batch
    assert set(got) == {"accuracy", "loss"}


def test_loss_is_left_out_when_never_given_and_averaged_over_batches_that_gave_it() -> None:
    meter = Task("digit", CLASSIFICATION, 4).meter()
    meter.update(logits_for(torch.tensor([0, 1]), 4), torch.tensor([0, 1]))
    assert "loss" not in meter.compute()
    meter.update(logits_for(torch.tensor([0]), 4), torch.tensor([0]), loss=3.0)
    assert meter.compute()["loss"] == pytest.approx(3.0)
    assert meter.compute()["accuracy"] == 1.0


def test_miou_and_pixel_accuracy_by_hand_absent_class_does_not_count() -> None:
    # 4 classes; class 3 is in neither the labels nor the predictions.
    labels = torch.tensor([[[0, 0], [1, 2]]])
    pred = torch.tensor([[[0, 1], [1, 1]]])
    meter = TaskMeter(Task("mask", SEGMENTATION, 4))
    meter.update(logits_for(pred, 4), labels)
    got = meter.compute()
    # class 0: 1 pixel right of 2 in the union; class 1: 1 of 3; class 2: 0 of 1.
    assert got["miou"] == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)
    assert got["pixel_accuracy"] == pytest.approx(2 / 4)


def test_miou_matches_a_per_class_set_computation() -> None:
    g = torch.Generator().manual_seed(1)
    k = 5
    labels = torch.randint(k - 1, (3, 6, 6), generator=g)  # class 4 never a label
    out = torch.randn(3, k, 6, 6, generator=g)
    meter = Task("m", SEGMENTATION, k).meter()
    meter.update(out, labels)
    pred = out.argmax(1)
    ious = []
    for c in range(k):
        inter = ((pred == c) & (labels == c)).sum().item()
        union = ((pred == c) | (labels == c)).sum().item()
        if union:
            ious.append(inter / union)
    assert meter.compute()["miou"] == pytest.approx(sum(ious) / len(ious))
    assert meter.compute()["pixel_accuracy"] == pytest.approx((pred == labels).float().mean())


@pytest.mark.parametrize("kind", [CLASSIFICATION, SEGMENTATION])
def test_meter_is_invariant_to_batching(kind: str) -> None:
    g = torch.Generator().manual_seed(2)
    task = Task("t", kind, 3)
    shape = (10, 3) if kind == CLASSIFICATION else (10, 3, 5, 5)
    out = torch.randn(shape, generator=g)
    labels = torch.randint(3, (shape[0], *shape[2:]), generator=g)
    whole, halves = task.meter(), task.meter()
    whole.update(out, labels, task.loss(out, labels))
    for part in (slice(0, 3), slice(3, 10)):  # unequal halves
        halves.update(out[part], labels[part], task.loss(out[part], labels[part]))
    a, b = whole.compute(), halves.compute()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key]), key
    assert torch.equal(whole.confusion, halves.confusion)


def test_meter_without_updates_gives_nan_and_refuses_bad_labels() -> None:
    meter = Task("mask", SEGMENTATION, 3).meter()
    got = meter.compute()
    assert math.isnan(got["miou"]) and math.isnan(got["pixel_accuracy"])
    with pytest.raises(ValueError, match=r"task 'mask': labels range over \[3, 3\]"):
        meter.update(torch.zeros(1, 3, 2, 2), torch.full((1, 2, 2), 3))
    assert meter.confusion.sum() == 0  # nothing was counted


# ---- selecting tasks and the multi-task score -----------------------------------------------


def test_select_tasks_keeps_the_given_order_and_names_unknown_tasks() -> None:
    tasks = multidigits_tasks()
    assert list(select_tasks(tasks, ["mask", "left"])) == ["mask", "left"]
    assert select_tasks(tasks, ["right"])["right"] is tasks["right"]
    with pytest.raises(KeyError, match=r"unknown task\(s\) \['sum'\], expected names from"):
        select_tasks(tasks, ["left", "sum"])


def test_multitask_score_zero_sign_and_formula() -> None:
    tasks = select_tasks(multidigits_tasks(), ["left", "right"])
    single = {"left": 0.8, "right": 0.6}
    assert multitask_score(single, single, tasks) == 0
    assert multitask_score({"left": 0.9, "right": 0.7}, single, tasks) > 0
    assert multitask_score({"left": 0.7, "right": 0.5}, single, tasks) < 0
    # +0.1 on a 0.8 baseline is +12.5%; -0.1 on a 0.6 baseline is -16.7%: on average a loss.
    got = multitask_score({"left": 0.9, "right": 0.5}, single, tasks)
    assert got == pytest.approx((0.125 - 1 / 6) / 2)
    # Relative, so scaling every metric (a percentage instead of a fraction) changes nothing.
    scaled = multitask_score({"left": 90, "right": 50}, {"left": 80, "right": 60}, tasks)
    assert scaled == pytest.approx(got)
    # Only the given tasks count; the order of the tasks does not matter.
    reordered = select_tasks(multidigits_tasks(), ["right", "left"])
    assert multitask_score({"left": 0.9, "right": 0.5, "mask": 0.1}, single, reordered) == (
        pytest.approx(got)
    )


def test_multitask_score_bad_input() -> None:
    tasks = select_tasks(multidigits_tasks(), ["left", "right"])
    with pytest.raises(KeyError, match=r"no metric for task\(s\) \['right'\]"):
        multitask_score({"left": 0.9}, {"left": 0.8, "right": 0.6}, tasks)
    with pytest.raises(ValueError, match=r"single-task metric of task\(s\) \['left'\] is 0"):
        multitask_score({"left": 0.9, "right": 0.5}, {"left": 0, "right": 0.6}, tasks)
    with pytest.raises(ValueError, match="'tasks' is empty"):
        multitask_score({}, {}, {})


# ---- tasks drive the heads ------------------------------------------------------------------


def test_make_model_builds_one_head_per_task_of_its_kind() -> None:
    tasks = {**multidigits_tasks(), "parity": Task("parity", CLASSIFICATION, 2)}
    model = make_model(tasks, seed=0)
    assert isinstance(model, MultiTaskModel)
    assert model.tasks == tuple(tasks)
    assert isinstance(model.heads["left"], Classifier)
    assert isinstance(model.heads["mask"], DenseHead)
    out = model(torch.zeros(2, 3, 28, 28))
    assert list(out) == list(tasks)
    for name, task in tasks.items():
        task.check_labels(out[name], torch.zeros((2, 28, 28)[: out[name].ndim - 1],
                                                 dtype=torch.int64))
        assert out[name].shape[1] == task.num_classes
    report = model.parameter_report()
    assert report["shared"] + sum(report[t] for t in tasks) == report["total"]
    assert report["left"] == report["right"] > report["parity"]


def test_make_model_seed_is_reproducible_and_leaves_the_global_rng_alone() -> None:
    tasks = multidigits_tasks()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b = make_model(tasks, seed=7), make_model(tasks, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = make_model(tasks, seed=8)
    assert not torch.equal(sa["backbone.conv1.weight"], c.state_dict()["backbone.conv1.weight"])
    # Without a seed, the global generator is used (and advanced).
    make_model(tasks)
    assert not torch.equal(torch.get_rng_state(), before)
