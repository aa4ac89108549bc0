"""What every exercise check shares: the error a wrong answer raises, the line a right answer
prints, and the safe call of a student's function."""

from __future__ import annotations

from collections.abc import Callable


class ExerciseError(AssertionError):
    """A wrong answer to an exercise; the message says what was expected and a hint."""


def correct(message: str) -> None:
    """Print the line of a right answer: ``Correct! <message>``."""
    print(f"Correct! {message}")


def call_answer(fn: Callable, *args: object) -> object:
    """``fn(*args)``, with a student's bug reported as an ``ExerciseError`` that names the cause.

    ``NotImplementedError`` (an exercise left as given) passes through unchanged.
    """
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
