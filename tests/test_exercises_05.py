"""Notebook 05's exercise checks pass right answers and reject the wrong answers students give,
each with a message that says what is wrong."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from mtlaug_lib import exercises

# ---- 05.1: the two-task MGDA weight ------------------------------------------------------------


def _unconstrained(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    return (g2 - g1) @ g2 / ((g1 - g2) @ (g1 - g2))


def mgda_right(g1: torch.Tensor, g2: torch.Tensor) -> float:
    diff = g1 - g2
    if float(diff @ diff) == 0.0:
        return 0.5
    return float(_unconstrained(g1, g2).clamp(0, 1))


def mgda_right_numpy_style(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """Also right: a 0-d tensor, torch.dot, a guard on the norm, min/max instead of clamp."""
    diff = g1 - g2
    denom = torch.dot(diff, diff)
    if denom < 1e-12:
        return torch.tensor(0.0)
    return torch.clamp(torch.dot(g2, g2 - g1) / denom, min=0.0, max=1.0)


MGDA_RIGHT = [mgda_right, mgda_right_numpy_style]

MGDA_WRONG: dict[str, tuple[Callable, str]] = {
    "unclipped": (lambda g1, g2: float(_unconstrained(g1, g2)) if float(
        (g1 - g2) @ (g1 - g2)) else 0.5, "outside \\[0, 1\\].*Clip"),
    "clipped at 1 only": (lambda g1, g2: min(1.0, float(_unconstrained(g1, g2))) if float(
        (g1 - g2) @ (g1 - g2)) else 0.5, "at both ends"),
    "swapped g1 and g2 (returns 1 - a)": (lambda g1, g2: 1 - mgda_right(g1, g2), "1 - a"),
    "denominator |g1|^2 + |g2|^2": (
        lambda g1, g2: float(((g2 - g1) @ g2 / (g1 @ g1 + g2 @ g2)).clamp(0, 1)), "Hint"),
    "sign error, clipped": (lambda g1, g2: float(
        ((g1 - g2) @ g2 / ((g1 - g2) @ (g1 - g2) + 1e-30)).clamp(0, 1)), "longer.*Hint"),
    "always 0.5": (lambda g1, g2: 0.5, "only where \\|g1\\| = \\|g2\\|"),
    "no guard: nan where g1 == g2": (
        lambda g1, g2: float(_unconstrained(g1, g2).clamp(0, 1)), "nan.*dividing by zero"),
    "no guard: ZeroDivisionError where g1 == g2": (
        lambda g1, g2: max(0.0, min(1.0, float((g2 - g1) @ g2) / float((g1 - g2) @ (g1 - g2)))),
        "ZeroDivisionError.*g1 == g2"),
    "returns the point, not the weight": (
        lambda g1, g2: mgda_right(g1, g2) * g1 + (1 - mgda_right(g1, g2)) * g2,
        "not the point"),
    "returns a string": (lambda g1, g2: "0.3", "expected a float"),
}


@pytest.mark.parametrize("answer", MGDA_RIGHT, ids=lambda f: f.__name__)
def test_mgda_check_accepts_right_answers(
    answer: Callable, capsys: pytest.CaptureFixture[str]
) -> None:
    exercises.check_mgda_two_tasks(answer)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize("wrong", list(MGDA_WRONG))
def test_mgda_check_rejects_wrong_answers(wrong: str) -> None:
    answer, message = MGDA_WRONG[wrong]
    with pytest.raises(exercises.ExerciseError, match=message):
        exercises.check_mgda_two_tasks(answer)


# ---- 05.2: PCGrad's projection -----------------------------------------------------------------


def project_right(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    dot = g1 @ g2
    return g1 - dot / (g2 @ g2) * g2 if dot < 0 else g1


def project_right_in_place(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """Also right: <= 0 (orthogonal gradients project by 0), in-place update, torch.dot."""
    dot = torch.dot(g1, g2)
    if dot <= 0:
        g1 -= dot / g2.norm() ** 2 * g2
    return g1


PCGRAD_RIGHT = [project_right, project_right_in_place]

PCGRAD_WRONG: dict[str, tuple[Callable, str]] = {
    "projects always": (lambda g1, g2: g1 - (g1 @ g2) / (g2 @ g2) * g2, "do not conflict"),
    "projects when g1 . g2 > 0": (
        lambda g1, g2: g1 - (g1 @ g2) / (g2 @ g2) * g2 if g1 @ g2 > 0 else g1,
        "returned g1 unchanged"),
    "projects onto g1": (
        lambda g1, g2: g1 - (g1 @ g2) / (g1 @ g1) * g1 if g1 @ g2 < 0 else g1,
        "along g1 itself"),
    "divides by |g2|": (
        lambda g1, g2: g1 - (g1 @ g2) / g2.norm() * g2 if g1 @ g2 < 0 else g1,
        "divided by \\|g2\\|"),
    "adds the component": (
        lambda g1, g2: g1 + (g1 @ g2) / (g2 @ g2) * g2 if g1 @ g2 < 0 else g1, "subtract it"),
    "returns the component": (
        lambda g1, g2: (g1 @ g2) / (g2 @ g2) * g2 if g1 @ g2 < 0 else g1,
        "returned the component along g2"),
    "projects g2 onto g1 (arguments swapped)": (
        lambda g1, g2: g2 - (g1 @ g2) / (g1 @ g1) * g1 if g1 @ g2 < 0 else g1,
        "g1' . g2 should be 0"),
    "returns a list": (lambda g1, g2: project_right(g1, g2).tolist(), "expected a tensor"),
    "returns both projected gradients": (
        lambda g1, g2: torch.stack([project_right(g1, g2), project_right(g2, g1)]),
        "expected a tensor of g1's shape"),
}


@pytest.mark.parametrize("answer", PCGRAD_RIGHT, ids=lambda f: f.__name__)
def test_pcgrad_check_accepts_right_answers(
    answer: Callable, capsys: pytest.CaptureFixture[str]
) -> None:
    exercises.check_pcgrad_projection(answer)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize("wrong", list(PCGRAD_WRONG))
def test_pcgrad_check_rejects_wrong_answers(wrong: str) -> None:
    answer, message = PCGRAD_WRONG[wrong]
    with pytest.raises(exercises.ExerciseError, match=message):
        exercises.check_pcgrad_projection(answer)


@pytest.mark.parametrize("check", [exercises.check_mgda_two_tasks,
                                   exercises.check_pcgrad_projection])
def test_unsolved_exercise_passes_through(check: Callable) -> None:
    """The student edition's placeholder raises NotImplementedError; the check lets it through."""
    def unsolved(g1: torch.Tensor, g2: torch.Tensor) -> None:
        raise NotImplementedError("Exercise: replace this line with your solution")

    with pytest.raises(NotImplementedError):
        check(unsolved)
