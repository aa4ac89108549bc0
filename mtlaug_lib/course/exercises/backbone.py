"""Checks of notebook 01 (the backbone): the feature size and a convolution's parameters.

Each wrong answer is matched against the mistakes students make, so the hint names the slip.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch
from torch import nn

from ...core.models import FeatureExtractor
from .common import ExerciseError, call_answer, correct


def _whole_number(call: str, got: object, what: str, float_hint: str) -> None:
    """Raise unless ``got`` is a whole number (an int; not a float, a bool, a tensor or None)."""
    if got is None:
        raise ExerciseError(f"{call} returned None. Hint: did you forget the `return`?")
    if isinstance(got, bool) or not isinstance(got, numbers.Integral):
        hint = float_hint if isinstance(got, float) else "return a Python int"
        raise ExerciseError(
            f"{call} returned {got!r} ({type(got).__name__}); {what} is a whole number "
            f"(an int). Hint: {hint}."
        )


def _diagnose(
    mistakes: list[tuple[Callable[..., int], str]],
    answers: list[tuple[tuple[int, ...], object]],
    fallback: str,
) -> str:
    """The hint of the first known mistake that gives all the student's answers, else
    ``fallback``. ``answers`` holds ``(arguments, returned value)`` pairs."""
    for wrong, hint in mistakes:
        if all(wrong(*args) == got for args, got in answers):
            return hint
    return fallback


def _unpadded(n: int) -> int:
    """A side after the backbone if its 3x3 convolutions had no padding (each removes 2)."""
    return ((n - 2) // 2 - 2) // 2


_ROUND_EACH_SIDE = (
    "each max-pool rounds height and width down on their own: 30 -> 15 -> 7, not 30 / 4 = 7.5; "
    "rounding or dividing the whole product (64 * 30 * 30 // 16 = 3600) is wrong for odd sizes"
)
# Answers students give to exercise 01.1, each with the hint that explains its mistake.
_FEATURE_SIZE_MISTAKES: list[tuple[Callable[..., int], str]] = [
    (lambda h, w: 64 * 7 * 7, "3,136 is the article's 64 * 7 * 7, right for 28 x 28 inputs "
     "only: compute the size from height and width"),
    (lambda h, w: (h // 4) * (w // 4), "count every channel: the last convolution has 64"),
    (lambda h, w: 32 * (h // 4) * (w // 4), "the last convolution has 64 channels, not 32"),
    (lambda h, w: 3 * 64 * (h // 4) * (w // 4), "the input's 3 channels are not in the "
     "output: it has the 64 channels of the last convolution"),
    (lambda h, w: 64 * (h // 2) * (w // 2), "the backbone has two max-pools: halve twice"),
    (lambda h, w: 64 * h * w, "each 2 x 2 max-pool halves height and width"),
    (lambda h, w: 64 * -(-h // 4) * -(-w // 4),  # also rounding up each halving
     "MaxPool2d rounds down (ceil_mode=False): 15 -> 7, not 8"),
    (lambda h, w: 64 * h * w // 16, _ROUND_EACH_SIDE),
    (lambda h, w: int(64 * (h / 4) * (w / 4)), _ROUND_EACH_SIDE),
    (lambda h, w: round(64 * (h / 4) * (w / 4)), _ROUND_EACH_SIDE),
    (lambda h, w: 64 * (h // 4) * (h // 4), "use the width too: not every input is square"),
    (lambda h, w: 64 * (w // 4) * (w // 4), "use the height too: not every input is square"),
    (lambda h, w: 64 * _unpadded(h) * _unpadded(w),
     "the convolutions have padding 1, so they keep the size"),
]
_FEATURE_SIZE_HINT = (
    "the 3x3 convolutions with padding 1 keep the size; each 2x2 max-pool halves it, rounding "
    "down; the last convolution has 64 channels"
)


def check_feature_size(feature_size: Callable[[int, int], int]) -> None:
    """Exercise 01.1: ``feature_size(height, width)`` -> features the article's extractor gives.

    Compared against the real ``FeatureExtractor`` layers on inputs of several sizes, odd
    and non-square ones included (2x2 max-pooling floors: 15 -> 7). A wrong answer gets the
    hint of the known mistake (``_FEATURE_SIZE_MISTAKES``) that gives the same values.
    """
    layers = FeatureExtractor()
    sizes = [(28, 28), (32, 32), (224, 224), (30, 30), (29, 35), (8, 12)]
    # All answers first: the mistake is diagnosed from all of them (one size can fit several).
    answers: list[tuple[tuple[int, ...], object]] = []
    for h, w in sizes:
        got = call_answer(feature_size, h, w)
        _whole_number(f"feature_size({h}, {w})", got, "a number of features",
                      "pooling rounds down: use integer division //, not /")
        answers.append(((h, w), got))
    for (h, w), got in answers:
        with torch.no_grad():
            x = layers.pool(layers.conv1(torch.zeros(1, 3, h, w)))
            expected = layers.pool(layers.conv2(x))[0].numel()
        if got != expected:
            hint = _diagnose(_FEATURE_SIZE_MISTAKES, answers, _FEATURE_SIZE_HINT)
            raise ExerciseError(
                f"feature_size({h}, {w}) returned {got!r}, expected {expected}. Hint: {hint}."
            )
    correct("for 224 x 224 inputs the article's head would need 64 * 56 * 56 = 200,704 inputs.")


# Answers students give to exercise 01.2, each with the hint that explains its mistake.
_CONV_PARAMETER_MISTAKES: list[tuple[Callable[..., int], str]] = [
    (lambda ci, co, k: co * ci * k * k, "you counted the weights; add the bias, one number per "
     "output channel"),
    (lambda ci, co, k: co * ci * k * k + ci, "the bias has one number per output channel "
     "(c_out), not per input channel"),
    (lambda ci, co, k: co * ci * (k * k + 1), "the bias has one number per output channel, not "
     "one per k x k kernel"),
    (lambda ci, co, k: (ci + 1) * co * k * k, "the bias is one number per output channel, not a "
     "k x k kernel of its own"),
    (lambda ci, co, k: co * (ci * k + 1), "a k x k kernel has k * k weights, not k"),
    (lambda ci, co, k: co * (ci * 2 * k + 1), "a k x k kernel has k * k weights, not 2 * k"),
    (lambda ci, co, k: co * (ci * (k ^ 2) + 1), "in Python `^` is bitwise XOR (3 ^ 2 == 1): "
     "square with k * k or k ** 2"),
    (lambda ci, co, k: co * (k * k + 1), "every output channel has one k x k kernel per input "
     "channel: multiply by c_in"),
    (lambda ci, co, k: ci * (k * k + 1), "every output channel has its own kernels and bias: "
     "multiply by c_out"),
]
_CONV_PARAMETER_HINT = "every output channel has one k x k kernel per input channel, plus a bias"


def check_conv_parameters(conv_parameters: Callable[[int, int, int], int]) -> None:
    """Exercise 01.2: ``conv_parameters(c_in, c_out, k)`` -> parameters of a k x k Conv2d.

    Compared with the parameters of real ``nn.Conv2d`` layers (c_in != c_out and k > 1 in
    most cases, so that swapped or missing factors show). A wrong answer gets the hint of the
    known mistake (``_CONV_PARAMETER_MISTAKES``) that gives the same values.
    """
    shapes = [(3, 32, 3), (32, 64, 3), (1, 1, 1), (16, 8, 5)]
    # All answers first: the mistake is diagnosed from all of them (one shape can fit several).
    answers: list[tuple[tuple[int, ...], object]] = []
    for c_in, c_out, k in shapes:
        got = call_answer(conv_parameters, c_in, c_out, k)
        _whole_number(f"conv_parameters({c_in}, {c_out}, {k})", got, "a number of parameters",
                      "use k * k or k ** 2 (math.pow returns a float)")
        answers.append(((c_in, c_out, k), got))
    for (c_in, c_out, k), got in answers:
        expected = sum(p.numel() for p in nn.Conv2d(c_in, c_out, k).parameters())
        if got != expected:
            hint = _diagnose(_CONV_PARAMETER_MISTAKES, answers, _CONV_PARAMETER_HINT)
            raise ExerciseError(
                f"conv_parameters({c_in}, {c_out}, {k}) returned {got!r}, expected {expected}. "
                f"Hint: {hint}."
            )
    correct("the article's two convolutions hold 896 + 18,496 = 19,392 parameters.")
