"""The shared argument checks (``core.checks``): each refuses bools, NaN, wrong types and values
out of range with a ``ValueError`` that names the argument, and returns a plain Python value."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from mtlaug_lib.core.checks import (
    check_choice,
    check_int,
    check_number,
    check_positive_int,
    check_probability,
    check_seed,
    describe_value,
    is_int_tensor,
)

# (check, arguments after the name, good values with what each gives, bad values)
CHECKS: dict[str, tuple[Callable[..., object], dict, list[tuple[object, object]], list[object]]] = {
    "check_probability": (
        check_probability, {},
        [(0, 0.0), (1, 1.0), (0.25, 0.25), (np.float64(0.5), 0.5)],
        [True, False, math.nan, -0.1, 1.5, math.inf, "0.5", None, torch.tensor(0.5)],
    ),
    "check_positive_int": (
        check_positive_int, {},
        [(1, 1), (7, 7), (np.int64(3), 3), (np.uint8(2), 2)],
        [True, False, math.nan, 0, -3, 2.0, 2.5, "2", None, torch.tensor(2)],
    ),
    "check_positive_int(upper=5)": (
        check_positive_int, {"upper": 5},
        [(5, 5), (np.int32(1), 1)],
        [True, 6, np.int64(6), 0],
    ),
    "check_int(minimum=2)": (
        check_int, {"minimum": 2},
        [(2, 2), (10, 10), (np.int64(3), 3)],
        [True, False, math.nan, 1, -2, 2.0, "2", None, torch.tensor(2)],
    ),
    "check_number": (
        check_number, {},
        [(0, 0.0), (2.5, 2.5), (np.float32(0.5), 0.5), (np.int64(3), 3.0)],
        [True, False, math.nan, math.inf, -math.inf, -1e-9, "1", None, torch.tensor(1.0)],
    ),
    "check_number(minimum=1, strict=True)": (
        check_number, {"minimum": 1, "strict": True},
        [(1.5, 1.5), (2, 2.0)],
        [True, 1, 1.0, 0.5, math.nan],
    ),
    "check_choice": (
        check_choice, {"choices": ("mean", "sum")},
        [("mean", "mean"), ("sum", "sum")],
        [True, False, math.nan, "Mean", "", None, 0],
    ),
    "check_choice(numbers)": (
        check_choice, {"choices": (0, 1, 2)},
        [(0, 0), (2, 2)],
        [True, False, math.nan, 3, "1", None],
    ),
}


def _call(check: Callable[..., object], name: str, value: object, kwargs: dict) -> object:
    if check is check_choice:
        return check(name, value, kwargs["choices"])
    return check(name, value, **kwargs)


@pytest.mark.parametrize("key", CHECKS)
def test_good_values_come_back_as_plain_python(key: str) -> None:
    check, kwargs, good, _ = CHECKS[key]
    for value, expected in good:
        got = _call(check, "x", value, kwargs)
        assert got == expected and type(got) is type(expected), (value, got)


@pytest.mark.parametrize("key", CHECKS)
def test_bad_values_are_refused_naming_the_argument(key: str) -> None:
    check, kwargs, _, bad = CHECKS[key]
    for value in bad:
        with pytest.raises(ValueError, match=r"^argument 'some_arg' is .*, expected ") as err:
            _call(check, "some_arg", value, kwargs)
        assert str(value) in str(err.value) or isinstance(value, torch.Tensor), err.value


def test_check_seed_takes_non_negative_integers_numpy_included() -> None:
    assert check_seed(0) == 0 and check_seed(np.int64(7)) == 7
    assert type(check_seed(np.int64(7))) is int
    for bad in (True, False, -1, 1.0, math.nan, "1", None):
        with pytest.raises(ValueError, match=r"argument 'seed' is .*, expected a non-negative"):
            check_seed(bad)
    with pytest.raises(ValueError, match=r"^argument 'data_seed' is -2"):
        check_seed(-2, name="data_seed")


def test_messages_say_what_is_expected() -> None:
    with pytest.raises(ValueError, match=r"expected a probability in \[0, 1\]"):
        check_probability("p", 2)
    with pytest.raises(ValueError, match=r"'n' is 9, expected at most 5"):
        check_positive_int("n", 9, upper=5)
    with pytest.raises(ValueError, match=r"'num_classes' is 1, expected an int >= 2$"):
        check_int("num_classes", 1, minimum=2)
    with pytest.raises(ValueError, match=r"expected a finite number >= 0$"):
        check_number("lr", -1)
    with pytest.raises(ValueError, match=r"expected a finite number > 0.5$"):
        check_number("lr", 0.5, minimum=0.5, strict=True)
    with pytest.raises(ValueError, match=r"expected one of \('mean', 'sum'\)"):
        check_choice("reduction", "max", ["mean", "sum"])


def test_a_bool_matches_only_a_bool_choice() -> None:
    assert check_choice("flag", True, (True, False)) is True
    assert check_choice("flag", False, (None, False)) is False
    with pytest.raises(ValueError, match="argument 'flag' is True"):
        check_choice("flag", True, (1, 2))


def test_describe_value() -> None:
    assert describe_value(torch.zeros(2, 3, dtype=torch.int64)) == (
        "Tensor of shape (2, 3) and dtype torch.int64")
    assert describe_value([1, 2]) == "list" and describe_value(None) == "NoneType"


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [(torch.int64, True), (torch.uint8, True), (torch.int32, True), (torch.bool, False),
     (torch.float32, False), (torch.float16, False), (torch.complex64, False)],
)
def test_is_int_tensor(dtype: torch.dtype, expected: bool) -> None:
    assert is_int_tensor(torch.zeros(2, dtype=dtype)) is expected
