"""The weighting methods by name: ``WEIGHTING_METHODS`` and ``make_weighting_method``.

A new method is one class in a module of its own (or beside its kind) and one entry here.

| name            | class                    | task gradients      | the weights          |
|-----------------|--------------------------|---------------------|----------------------|
| ``equal``       | ``EqualWeighting``       | no                  | 1 each (= ``joint``) |
| ``fixed``       | ``FixedWeighting``       | no                  | as given             |
| ``uncertainty`` | ``UncertaintyWeighting`` | no (learns T)       | exp(-s_t), learned   |
| ``dwa``         | ``DWA``                  | no                  | sum T                |
| ``rlw``         | ``RandomWeighting``      | no                  | random, sum 1        |
| ``gradnorm``    | ``GradNorm``             | norms (learns T)    | learned, sum T       |
| ``pcgrad``      | ``PCGrad``               | yes                 | implied, 1 + ...     |
| ``mgda``        | ``MGDA``                 | yes                 | >= 0, sum 1          |
| ``cagrad``      | ``CAGrad``               | yes                 | >= 1/T, sum 1 + c..  |
| ``imtl-g``      | ``IMTLG``                | yes                 | sum 1, may be < 0 (*)|

(*) IMTL-G gives a zero task gradient weight 0 (all weights 0 if every gradient is zero).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import WeightingMethod
from .gradient_based import IMTLG, MGDA, CAGrad, PCGrad
from .gradnorm import GradNorm
from .loss_based import DWA, EqualWeighting, FixedWeighting, RandomWeighting, UncertaintyWeighting

WEIGHTING_METHODS: dict[str, Callable[..., WeightingMethod]] = {
    "equal": EqualWeighting,
    "fixed": FixedWeighting,
    "uncertainty": UncertaintyWeighting,
    "dwa": DWA,
    "rlw": RandomWeighting,
    "gradnorm": GradNorm,
    "pcgrad": PCGrad,
    "mgda": MGDA,
    "cagrad": CAGrad,
    "imtl-g": IMTLG,
}


def gradient_methods() -> tuple[str, ...]:
    """The names of the methods that use task gradients (and so take a gradient source)."""
    return tuple(k for k, v in WEIGHTING_METHODS.items() if getattr(v, "uses_gradients", False))


def make_weighting_method(method: str | WeightingMethod, **options: Any) -> WeightingMethod:
    """A ``WeightingMethod`` from its name (options go to its class), or the instance as given.

    ``make_weighting_method("cagrad", c=0.4)`` is ``CAGrad(c=0.4)``.
    """
    if isinstance(method, WeightingMethod):
        if options:
            raise ValueError(
                f"options {sorted(options)} were given with a WeightingMethod instance; set them "
                "when creating it"
            )
        return method
    if method not in WEIGHTING_METHODS:
        raise ValueError(
            f"argument 'method' is {method!r}, expected one of {tuple(WEIGHTING_METHODS)} or a "
            "WeightingMethod instance"
        )
    return WEIGHTING_METHODS[method](**options)
