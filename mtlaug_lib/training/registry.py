"""Strategies by name: ``make_strategy``, above both registries.

A strategy's name is a key of ``strategies.STRATEGIES`` (joint, alternating, sequential) or of
``weighting.WEIGHTING_METHODS`` (a weighting method, run by the ``Weighted`` strategy). This
module sits above both, so that neither registry needs to know the other.
"""

from __future__ import annotations

from typing import Any

from .strategies import STRATEGIES
from .strategy import Strategy
from .weighting import WEIGHTING_METHODS, Weighted


def make_strategy(strategy: str | Strategy, **options: Any) -> Strategy:
    """A ``Strategy`` from its name, with ``options`` passed to its class, or as given.

    ``make_strategy("alternating", optimizers="per_task")`` is
    ``Alternating(optimizers="per_task")``. The name of a weighting method (``"mgda"``,
    ``"pcgrad"``, ...; see ``weighting.WEIGHTING_METHODS``) gives ``weighting.Weighted(name,
    **options)``: ``make_strategy("mgda", source="parameters")``.
    """
    if isinstance(strategy, Strategy):
        if options:
            raise ValueError(
                f"options {sorted(options)} were given with a Strategy instance; set them when "
                "creating it"
            )
        return strategy
    if isinstance(strategy, str) and strategy in WEIGHTING_METHODS and strategy not in STRATEGIES:
        return Weighted(strategy, **options)
    if strategy not in STRATEGIES:
        raise ValueError(
            f"argument 'strategy' is {strategy!r}, expected one of {tuple(STRATEGIES)}, a "
            f"weighting method {tuple(WEIGHTING_METHODS)}, or a Strategy instance"
        )
    if strategy == "joint" and options:
        raise ValueError(f"strategy 'joint' takes no options, got {sorted(options)}")
    return STRATEGIES[strategy](**options)
