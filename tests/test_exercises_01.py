"""Notebook 01's exercise checks: the right answer passes, the answers students get wrong fail
with a hint that names the mistake."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from mtlaug_lib import exercises

# --------------------------------------------------------------------------------------------
# Exercise 01.1: feature_size(height, width)


def right_feature_size(h: int, w: int) -> int:
    return 64 * (h // 2 // 2) * (w // 2 // 2)


@pytest.mark.parametrize(
    "answer",
    [
        right_feature_size,
        lambda h, w: 64 * (h // 4) * (w // 4),  # two floors by 2 are one floor by 4
        lambda h, w: 64 * math.floor(h / 2 / 2) * math.floor(w / 2 / 2),
        lambda h, w: 64 * int(h / 4) * int(w / 4),  # int() truncates: a floor for sizes >= 0
        lambda h, w: int(np.int64(64) * (h // 4) * (w // 4)),
        lambda h, w: np.int64(64 * (h // 4) * (w // 4)),  # a NumPy integer is a whole number
    ],
    ids=["halve-twice", "floor-by-4", "math-floor", "int-truncates", "int-of-numpy", "numpy-int"],
)
def test_feature_size_accepts_right_answers(
    answer: Callable[[int, int], int], capsys: pytest.CaptureFixture[str]
) -> None:
    exercises.check_feature_size(answer)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (lambda h, w: 64 * 7 * 7, "right for 28 x 28 inputs only"),
        (lambda h, w: (h // 4) * (w // 4), "the last convolution has 64"),
        (lambda h, w: 32 * (h // 4) * (w // 4), "64 channels, not 32"),
        (lambda h, w: 3 * 64 * (h // 4) * (w // 4), "input's 3 channels"),
        (lambda h, w: 64 * (h // 2) * (w // 2), "two max-pools: halve twice"),
        (lambda h, w: 64 * h * w, "halves height and width"),
        (lambda h, w: 64 * math.ceil(h / 4) * math.ceil(w / 4), r"rounds down \(ceil_mode=False\)"),
        (lambda h, w: 64 * math.ceil(math.ceil(h / 2) / 2) * math.ceil(math.ceil(w / 2) / 2),
         "15 -> 7, not 8"),
        (lambda h, w: h * w * 64 // 16, "dividing the whole product"),
        (lambda h, w: int(64 * (h / 4) * (w / 4)), "not 30 / 4 = 7.5"),
        (lambda h, w: round(64 * (h / 4) * (w / 4)), "not 30 / 4 = 7.5"),
        (lambda h, w: 64 * (h // 4) ** 2, "use the width too"),
        (lambda h, w: 64 * (w // 4) ** 2, "use the height too"),
        (lambda h, w: 64 * (((h - 2) // 2 - 2) // 2) * (((w - 2) // 2 - 2) // 2), "padding 1"),
        (lambda h, w: 64 * (h / 4) * (w / 4), r"3136.0 \(float\).*use integer division //"),
        (lambda h, w: 64 * (h // 4) * (w // 4) * 1.0, "a whole number"),
        (lambda h, w: None, "forget the `return`"),
        (lambda h, w: 64 * (h // 4) + (w // 4), "the 3x3 convolutions with padding 1 keep"),
    ],
    ids=[
        "article-constant", "no-channels", "32-channels", "input-channels", "halve-once",
        "no-pooling", "ceil", "ceil-twice", "divide-total", "int-of-float", "round-of-float",
        "height-only", "width-only", "no-padding", "float", "float-right-value", "no-return",
        "unknown-mistake",
    ],
)
def test_feature_size_rejects_wrong_answers(
    answer: Callable[[int, int], object], hint: str
) -> None:
    with pytest.raises(exercises.ExerciseError, match=hint) as info:
        exercises.check_feature_size(answer)
    assert "feature_size(" in str(info.value)  # the message says which call went wrong


def test_feature_size_names_the_failing_size() -> None:
    """The article's constant is right at 28 x 28 and wrong at the next size tried."""
    with pytest.raises(exercises.ExerciseError, match=r"feature_size\(32, 32\) returned 3136, "
                       r"expected 4096"):
        exercises.check_feature_size(lambda h, w: 64 * 7 * 7)


def test_feature_size_odd_sizes_are_what_pooling_gives() -> None:
    """The wrong answers that differ only on odd sizes fail at the first odd size, 30 x 30."""
    with pytest.raises(exercises.ExerciseError, match=r"feature_size\(30, 30\) returned 3600"):
        exercises.check_feature_size(lambda h, w: h * w * 64 // 16)


def test_feature_size_reports_a_crash_and_a_non_function() -> None:
    with pytest.raises(exercises.ExerciseError, match="raised ZeroDivisionError"):
        exercises.check_feature_size(lambda h, w: 1 // 0)
    with pytest.raises(exercises.ExerciseError, match="expected a function"):
        exercises.check_feature_size(3136)


# --------------------------------------------------------------------------------------------
# Exercise 01.2: conv_parameters(c_in, c_out, k)


@pytest.mark.parametrize(
    "answer",
    [
        lambda ci, co, k: co * (ci * k * k + 1),
        lambda ci, co, k: ci * co * k**2 + co,
        lambda ci, co, k: (ci * k * k + 1) * co,
    ],
    ids=["weights-and-bias", "k-squared", "per-output-channel"],
)
def test_conv_parameters_accepts_right_answers(
    answer: Callable[[int, int, int], int], capsys: pytest.CaptureFixture[str]
) -> None:
    exercises.check_conv_parameters(answer)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (lambda ci, co, k: co * ci * k * k, "add the bias"),
        (lambda ci, co, k: co * ci * k * k + ci, r"per output channel \(c_out\), not per input"),
        (lambda ci, co, k: ci * co * (k * k + 1), "not one per k x k kernel"),
        (lambda ci, co, k: (ci + 1) * co * k * k, "not a k x k kernel of its own"),
        (lambda ci, co, k: ci * co * k + co, "k \\* k weights, not k"),
        (lambda ci, co, k: co * (ci * 2 * k + 1), "k \\* k weights, not 2 \\* k"),
        (lambda ci, co, k: co * (ci * (k ^ 2) + 1), "bitwise XOR"),
        (lambda ci, co, k: co * (k * k + 1), "multiply by c_in"),
        (lambda ci, co, k: ci * (k * k + 1), "multiply by c_out"),
        (lambda ci, co, k: co * (ci * math.pow(k, 2) + 1), r"896.0 \(float\).*math.pow"),
        (lambda ci, co, k: None, "forget the `return`"),
        (lambda ci, co, k: str(co * (ci * k * k + 1)), "return a Python int"),
        (lambda ci, co, k: co * ci * k * k + co * k, "one k x k kernel per input channel, plus"),
    ],
    ids=[
        "no-bias", "bias-per-input-channel", "bias-per-kernel", "bias-as-kernel", "k-not-squared",
        "2k", "xor", "no-c-in", "no-c-out", "float", "no-return", "string", "unknown-mistake",
    ],
)
def test_conv_parameters_rejects_wrong_answers(
    answer: Callable[[int, int, int], object], hint: str
) -> None:
    with pytest.raises(exercises.ExerciseError, match=hint) as info:
        exercises.check_conv_parameters(answer)
    assert "conv_parameters(" in str(info.value)


def test_conv_parameters_bias_per_input_channel_fails_where_c_in_differs_from_c_out() -> None:
    with pytest.raises(exercises.ExerciseError, match=r"conv_parameters\(3, 32, 3\) returned 867, "
                       r"expected 896"):
        exercises.check_conv_parameters(lambda ci, co, k: co * ci * k * k + ci)
