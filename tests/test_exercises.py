"""The exercise checks accept right answers and reject wrong ones with a hint.

Notebook 01's checks, with their wrong answers, are tested in test_exercises_01.py.
"""

from __future__ import annotations

import pytest

from mtlaug_lib import exercises


def test_not_implemented_passes_through() -> None:
    def unsolved(h, w):
        raise NotImplementedError("Exercise 1")

    with pytest.raises(NotImplementedError):
        exercises.check_feature_size(unsolved)
