"""Checks for the notebooks' exercises: each says right, or what is wrong and a hint.

A check prints one line starting with ``Correct`` when the answer is right, and raises
``ExerciseError`` (an ``AssertionError``) with a helpful message when it is not, so a wrong
answer stops "Run all" at the exercise, as a failing test would.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class ExerciseError(AssertionError):
    """A wrong answer to an exercise; the message says what was expected and a hint."""


def _correct(message: str) -> None:
    print(f"Correct! {message}")


def _call(fn: Callable, *args: object) -> object:
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


# --------------------------------------------------------------------------------------------
# Notebook 01: the backbone


def check_feature_size(feature_size: Callable[[int, int], int]) -> None:
    """Exercise 01.1: ``feature_size(height, width)`` -> features the seed's extractor gives.

    Compared against the real ``FeatureExtractor`` layers on inputs of several sizes, odd
    ones included (2x2 max-pooling floors: 15 -> 7).
    """
    from .models import FeatureExtractor

    layers = FeatureExtractor()
    for h, w in [(28, 28), (32, 32), (224, 224), (30, 30), (29, 35), (8, 12)]:
        with torch.no_grad():
            x = torch.zeros(1, 3, h, w)
            x = layers.pool(layers.conv1(x))
            expected = layers.pool(layers.conv2(x))[0].numel()
        got = _call(feature_size, h, w)
        if got != expected:
            raise ExerciseError(
                f"feature_size({h}, {w}) returned {got!r}, expected {expected}. Hint: the 3x3 "
                "convolutions with padding 1 keep the size; each 2x2 max-pool halves it, "
                "rounding down; the last convolution has 64 channels."
            )
    _correct("for 224 x 224 inputs the seed's head would need 64 * 56 * 56 = 200,704 inputs.")


def check_conv_parameters(conv_parameters: Callable[[int, int, int], int]) -> None:
    """Exercise 01.2: ``conv_parameters(c_in, c_out, k)`` -> parameters of a k x k Conv2d."""
    for c_in, c_out, k in [(3, 32, 3), (32, 64, 3), (1, 1, 1), (16, 8, 5)]:
        expected = sum(p.numel() for p in nn.Conv2d(c_in, c_out, k).parameters())
        got = _call(conv_parameters, c_in, c_out, k)
        if got != expected:
            raise ExerciseError(
                f"conv_parameters({c_in}, {c_out}, {k}) returned {got!r}, expected {expected}. "
                "Hint: every output channel has one k x k kernel per input channel, plus a bias."
            )
    _correct("the seed's two convolutions hold 896 + 18,496 = 19,392 parameters.")
