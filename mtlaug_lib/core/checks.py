"""Argument checks shared by the whole library.

Every public function checks its arguments before it changes anything and raises an error of
one form: "argument 'x' is <what it got>, expected <what it takes>". These helpers spell that
form once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def describe_value(value: Any) -> str:
    """A short description of ``value`` for an error message: a tensor's type, shape and dtype,
    else the type's name."""
    if isinstance(value, torch.Tensor):
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    return type(value).__name__


def is_int_tensor(x: torch.Tensor) -> bool:
    """True for an integer tensor (class indices, masks): not float, complex or bool."""
    return not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool


def check_probability(name: str, p: object) -> float:
    """``p`` as a float in [0, 1], or a ``ValueError`` naming argument ``name``."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"argument {name!r} is {p!r}, expected a probability in [0, 1]")
    return float(p)


def check_positive_int(name: str, value: object, upper: int | None = None) -> int:
    """``value`` as an int >= 1 (and <= ``upper``), or a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"argument {name!r} is {value!r}, expected a positive integer")
    if upper is not None and value > upper:
        raise ValueError(f"argument {name!r} is {value}, expected at most {upper}")
    return int(value)


def check_int(name: str, value: object, *, minimum: int) -> int:
    """``value`` as an int ``>= minimum``, or a ``ValueError`` naming argument ``name``:
    "expected an int >= 2"."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"argument {name!r} is {value!r}, expected an int >= {minimum}")
    return int(value)


def check_seed(seed: object, name: str = "seed") -> int:
    """A random seed: an int >= 0, or a ``ValueError`` naming argument ``name``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"argument {name!r} is {seed!r}, expected a non-negative integer")
    return int(seed)


def check_number(name: str, value: object, *, minimum: float = 0.0, strict: bool = False) -> float:
    """``value`` as a finite float ``>= minimum`` (``> minimum`` if ``strict``), or a
    ``ValueError`` naming argument ``name``: "expected a finite number > 0"."""
    ok = (not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
          and math.isfinite(value) and (value > minimum if strict else value >= minimum))
    if not ok:
        bound = f"{'>' if strict else '>='} {minimum:g}"
        raise ValueError(f"argument {name!r} is {value!r}, expected a finite number {bound}")
    return float(value)


def check_choice(name: str, value: object, choices: Sequence[object]) -> Any:
    """``value`` if it is one of ``choices``, else a ``ValueError`` naming argument ``name``.

    A bool matches only a bool choice: ``True == 1``, but ``True`` is not the number 1.
    """
    if value not in choices or (
        isinstance(value, bool) and not any(choice is value for choice in choices)
    ):
        raise ValueError(f"argument {name!r} is {value!r}, expected one of {tuple(choices)}")
    return value
