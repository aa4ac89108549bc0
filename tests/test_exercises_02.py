"""Notebook 02's exercise checks: the right answers pass, the wrong ones students give do not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
import torch

import mtlaug_lib as mtl
from mtlaug_lib import exercises

# --------------------------------------------------------------------------- Exercise 02.1


def add_sum(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The right answer: the batch with ``sum`` = left + right (int64 B) added."""
    return {**batch, "sum": batch["left"] + batch["right"]}


@dataclass(frozen=True)
class SumAnswer:
    """What the notebook passes to ``check_sum_task``."""

    task: object
    model: object
    add_sum: Callable
    batch: object
    losses: object

    def check(self) -> None:
        exercises.check_sum_task(self.task, self.model, self.add_sum, self.batch, self.losses)


def _losses(model: mtl.MultiTaskModel, tasks: dict, batch: dict) -> dict[str, torch.Tensor]:
    return mtl.MultiTaskLoss(tasks)(model(batch["image"]), batch)


@pytest.fixture(scope="module")
def right() -> SumAnswer:
    task = mtl.Task("sum", "classification", 19)
    tasks = {**mtl.multidigits_tasks(), "sum": task}
    model = mtl.make_model(tasks, seed=0)
    batch = add_sum(mtl.MultiDigits("train", size=64, seed=0).batch(torch.arange(64)))
    return SumAnswer(task, model, add_sum, batch, _losses(model, tasks, batch))


def test_sum_task_right_answer_passes(right: SumAnswer, capsys: pytest.CaptureFixture) -> None:
    right.check()
    assert capsys.readouterr().out.startswith("Correct!")


def _with_sum(fn: Callable[[dict], torch.Tensor]) -> Callable[[dict], dict]:
    return lambda b: {**b, "sum": fn(b)}


def _shuffled(b: dict) -> torch.Tensor:
    sums = b["left"] + b["right"]
    return sums[torch.randperm(len(sums), generator=torch.Generator().manual_seed(0))]


WRONG_LABELS = {
    "only the left digit": (_with_sum(lambda b: b["left"]), "one digit's labels"),
    "sum modulo 10": (_with_sum(lambda b: (b["left"] + b["right"]) % 10), "modulo 10"),
    "shuffled sums": (_with_sum(_shuffled), "wrong order"),
    "all zeros": (_with_sum(lambda b: torch.zeros_like(b["left"])), "all 0"),
    "float labels": (_with_sum(lambda b: (b["left"] + b["right"]).float()), "torch.int64"),
    "int32 labels": (_with_sum(lambda b: (b["left"] + b["right"]).int()), "torch.int64"),
    "difference": (_with_sum(lambda b: (b["left"] - b["right"]).abs()), "its sum is"),
    "one label per batch": (_with_sum(lambda b: b["left"][:1] + b["right"][:1]), "shape"),
    "only the sum returned": (lambda b: {"sum": b["left"] + b["right"]}, "dropped or changed"),
    "returns the labels only": (lambda b: b["left"] + b["right"], "expected the batch"),
    "not a function": ("left + right", "should be a function"),
}


@pytest.mark.parametrize(("fn", "message"), WRONG_LABELS.values(), ids=WRONG_LABELS.keys())
def test_sum_task_wrong_labels_are_rejected(right: SumAnswer, fn: Callable, message: str) -> None:
    # The rest of the answer is right: only the labelling function is wrong.
    with pytest.raises(exercises.ExerciseError, match=message):
        replace(right, add_sum=fn).check()


@pytest.mark.parametrize(
    ("num_classes", "message"), [(18, "how many values"), (10, "how many values"), (20, "0 ... 18")]
)
def test_sum_task_wrong_class_count_is_rejected(
    right: SumAnswer, num_classes: int, message: str
) -> None:
    task = mtl.Task("sum", "classification", num_classes)
    tasks = {**mtl.multidigits_tasks(), "sum": task}
    model = mtl.make_model(tasks, seed=0)
    # (with 18 or 10 classes MultiTaskLoss itself refuses the labels 0 ... 18 in the notebook)
    answer = replace(right, task=task, model=model)
    with pytest.raises(exercises.ExerciseError, match=message):
        answer.check()


def test_sum_task_wrong_declaration_is_rejected(right: SumAnswer) -> None:
    with pytest.raises(exercises.ExerciseError, match="named 'sum'"):
        replace(right, task=mtl.Task("total", "classification", 19)).check()
    with pytest.raises(exercises.ExerciseError, match="classification task"):
        replace(right, task=mtl.Task("sum", "segmentation", 19)).check()
    with pytest.raises(exercises.ExerciseError, match="should be a mtl.Task"):
        replace(right, task="sum").check()


def test_sum_task_model_without_the_sum_head_is_rejected(right: SumAnswer) -> None:
    model = mtl.make_model(mtl.multidigits_tasks(), seed=0)
    with pytest.raises(exercises.ExerciseError, match="plus 'sum'"):
        replace(right, model=model).check()


def _wrong_batch(right: SumAnswer, labels: Callable[[dict], torch.Tensor]) -> SumAnswer:
    """The losses computed, consistently, on a batch whose 'sum' labels are ``labels``."""
    batch = {**right.batch, "sum": labels(right.batch)}
    tasks = {**mtl.multidigits_tasks(), "sum": right.task}
    return replace(right, batch=batch, losses=_losses(right.model, tasks, batch))


def test_sum_task_losses_on_wrong_labels_are_rejected(right: SumAnswer) -> None:
    # add_sum is right, but the batch passed (and its losses) carry other labels
    answer = _wrong_batch(right, lambda b: (b["left"] + b["right"]) % 10)
    with pytest.raises(exercises.ExerciseError, match="'batch': .*modulo 10"):
        answer.check()


def test_sum_task_losses_of_another_batch_are_rejected(right: SumAnswer) -> None:
    # losses computed on the right labels of one batch, a different batch passed to the check
    other = add_sum(mtl.MultiDigits("train", size=128, seed=0).batch(torch.arange(64, 128)))
    with pytest.raises(exercises.ExerciseError, match=r"losses\['sum'\] is"):
        replace(right, batch=other).check()
    # losses computed on the left digit as 'sum' labels, the right batch passed
    wrong = _wrong_batch(right, lambda b: b["left"])
    with pytest.raises(exercises.ExerciseError, match=r"losses\['sum'\] is"):
        replace(right, losses=wrong.losses).check()


def test_sum_task_losses_without_the_sum_task_are_rejected(right: SumAnswer) -> None:
    three = {k: v for k, v in right.losses.items() if k != "sum"}  # the course tasks' only
    with pytest.raises(exercises.ExerciseError, match="four tasks and the 'total'"):
        replace(right, losses=three).check()
    with pytest.raises(exercises.ExerciseError, match="four tasks and the 'total'"):
        replace(right, losses=right.losses["sum"]).check()
    total_of_three = {**right.losses, "total": right.losses["total"] - right.losses["sum"]}
    with pytest.raises(exercises.ExerciseError, match="sum of the four"):
        replace(right, losses=total_of_three).check()


def test_sum_task_batch_without_sum_labels_is_rejected(right: SumAnswer) -> None:
    batch = {k: v for k, v in right.batch.items() if k != "sum"}
    with pytest.raises(exercises.ExerciseError, match="with its 'sum' labels"):
        replace(right, batch=batch).check()


# --------------------------------------------------------------------------- Exercise 02.2


def multitask_score(multi: dict, single: dict) -> float:
    return sum((multi[t] - single[t]) / single[t] for t in single) / len(single)


WRONG_SCORES = {
    "absolute change": (
        lambda m, s: sum(m[t] - s[t] for t in s) / len(s), "expected 0.0500"),
    "divided by multi": (
        lambda m, s: sum((m[t] - s[t]) / m[t] for t in s) / len(s), "expected 0.0500"),
    "wrong sign": (
        lambda m, s: sum((s[t] - m[t]) / s[t] for t in s) / len(s), "expected 0.0500"),
    "sum, not mean": (
        lambda m, s: sum((m[t] - s[t]) / s[t] for t in s), "mean over tasks"),
    "percent": (
        lambda m, s: 100 * sum((m[t] - s[t]) / s[t] for t in s) / len(s), "not a percentage"),
    "ratio without minus one": (
        lambda m, s: sum(m[t] / s[t] for t in s) / len(s), "expected 0.0000"),
    "ratio of the means": (
        lambda m, s: sum(m.values()) / sum(s.values()) - 1, "expected 0.0500"),
    "hard-coded two tasks": (
        lambda m, s: sum((m[t] - s[t]) / s[t] for t in s) / 2, "expected -0.2500"),
    "paired by position": (
        lambda m, s: sum((a - b) / b for a, b in zip(m.values(), s.values(), strict=True))
        / len(s), "by task name"),
    "first task only": (lambda m, s: (m["a"] - s["a"]) / s["a"], "expected 0.0500"),
    "returns a string": (lambda m, s: f"{multitask_score(m, s):.1%}", "expected a number"),
    "returns None": (lambda m, s: None, "expected a number"),
}


@pytest.mark.parametrize(("fn", "message"), WRONG_SCORES.values(), ids=WRONG_SCORES.keys())
def test_multitask_score_wrong_answers_are_rejected(fn: Callable, message: str) -> None:
    with pytest.raises(exercises.ExerciseError, match=message):
        exercises.check_multitask_score(fn)


def test_multitask_score_right_answers_pass(capsys: pytest.CaptureFixture) -> None:
    exercises.check_multitask_score(multitask_score)
    assert capsys.readouterr().out.startswith("Correct!")
    # the same formula with torch or the statistics module is right too
    exercises.check_multitask_score(
        lambda m, s: torch.tensor([(m[t] - s[t]) / s[t] for t in s], dtype=torch.float64).mean()
    )
    assert capsys.readouterr().out.startswith("Correct!")


def test_multitask_score_crash_is_reported() -> None:
    with pytest.raises(exercises.ExerciseError, match="raised KeyError"):
        exercises.check_multitask_score(lambda m, s: m["left"] - s["left"])
