"""The exercise checks accept right answers and reject wrong ones with a hint."""

from __future__ import annotations

import pytest

from mtlaug_lib import exercises


def test_feature_size_check() -> None:
    exercises.check_feature_size(lambda h, w: 64 * (h // 4) * (w // 4))
    with pytest.raises(exercises.ExerciseError, match="Hint"):
        exercises.check_feature_size(lambda h, w: 64 * 7 * 7)  # the seed's constant
    with pytest.raises(exercises.ExerciseError, match=r"feature_size\(30, 30\)"):
        exercises.check_feature_size(lambda h, w: round(64 * (h / 4) * (w / 4)))  # no flooring
    with pytest.raises(exercises.ExerciseError, match="raised ZeroDivisionError"):
        exercises.check_feature_size(lambda h, w: 1 // 0)
    with pytest.raises(exercises.ExerciseError, match="expected a function"):
        exercises.check_feature_size(3136)


def test_conv_parameters_check(capsys: pytest.CaptureFixture[str]) -> None:
    exercises.check_conv_parameters(lambda ci, co, k: co * (ci * k * k + 1))
    assert capsys.readouterr().out.startswith("Correct!")
    with pytest.raises(exercises.ExerciseError, match="bias"):
        exercises.check_conv_parameters(lambda ci, co, k: co * ci * k * k)


def test_not_implemented_passes_through() -> None:
    def unsolved(h, w):
        raise NotImplementedError("Exercise 1")

    with pytest.raises(NotImplementedError):
        exercises.check_feature_size(unsolved)
