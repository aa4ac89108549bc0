"""The exercise checks accept right answers and reject wrong ones with a hint.

Notebook 01's checks, with their wrong answers, are tested in test_exercises_01.py.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import pytest

from mtlaug_lib import exercises

ROOT = Path(__file__).resolve().parents[1]


def test_every_check_the_notebooks_call_is_exported() -> None:
    used: set[str] = set()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"])
            used |= set(re.findall(r"\bexercises\.(\w+)", source))
    assert {"check_feature_size", "check_pcgrad_projection"} <= used  # notebooks 01 and 05
    assert used <= set(exercises.__all__), used - set(exercises.__all__)


def test_every_check_of_the_per_notebook_modules_is_exported() -> None:
    """One module per notebook, each check re-exported by the package (``exercises.check_x``)."""
    found = set()
    for info in pkgutil.iter_modules(exercises.__path__):
        module = importlib.import_module(f"{exercises.__name__}.{info.name}")
        for name, value in vars(module).items():
            if name.startswith("check_") and getattr(value, "__module__", "") == module.__name__:
                assert getattr(exercises, name, None) is value, f"{module.__name__}.{name}"
                found.add(name)
    assert found == {n for n in exercises.__all__ if n.startswith("check_")}


def test_not_implemented_passes_through() -> None:
    def unsolved(h, w):
        raise NotImplementedError("Exercise 1")

    with pytest.raises(NotImplementedError):
        exercises.check_feature_size(unsolved)


# Checks that take the student's function (the others take a pipeline or a task declaration).
FUNCTION_CHECKS = sorted(n for n in exercises.__all__ if n.startswith("check_")
                         and n not in {"check_safe_pipeline", "check_sum_task"})


@pytest.mark.parametrize("name", FUNCTION_CHECKS)
def test_every_check_lets_the_student_editions_placeholder_through(name) -> None:
    """The student edition replaces a solution with ``raise NotImplementedError(...)``: "Run
    all" must stop at the exercise with that error, not with a check's verdict."""
    def unsolved(*args: object, **kwargs: object) -> None:
        raise NotImplementedError("Exercise: replace this line with your solution")

    with pytest.raises(NotImplementedError):
        getattr(exercises, name)(unsolved)


@pytest.mark.parametrize("name", FUNCTION_CHECKS)
def test_every_check_says_when_it_gets_no_function(name) -> None:
    with pytest.raises(exercises.ExerciseError, match="expected a function"):
        getattr(exercises, name)(None)
