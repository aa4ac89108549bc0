"""Multi-task weighting: one small class per method, one interface, one training strategy.

Every method is a ``WeightingMethod`` (``base``): at each step it gets the T task losses and, if
it ``uses_gradients``, the T x D task gradients on the shared part, and returns a
``Combination`` (the step's task weights, and a loss to backpropagate or a combined gradient).
``Weighted(method)`` (``weighted``) is the ``Strategy`` that runs any of them in ``train``.

- ``base``: the base classes (``WeightingMethod``, ``LossWeighting``, ``GradientWeighting``,
  the ``OwnParameters`` mixin) and ``Combination``;
- ``loss_based``: equal, fixed, uncertainty, dwa, rlw;
- ``gradnorm``: GradNorm;
- ``gradient_based``: pcgrad, mgda, cagrad, imtl-g;
- ``registry``: ``WEIGHTING_METHODS`` (name -> class, with a table of the methods) and
  ``make_weighting_method``;
- ``weighted``: the strategy ``Weighted`` and ``NonFiniteWeightError``.

A new method is its own class (in its own module, or beside its kind) and one registry entry;
the method classes themselves are imported from their modules or looked up in the registry.
For the gradient-combination methods the weights are *implied*: the combined gradient of the
shared part is ``weights @ G`` exactly (``training.gradients``).
"""

from .base import Combination, GradientWeighting, LossWeighting, WeightingMethod
from .registry import WEIGHTING_METHODS, gradient_methods, make_weighting_method
from .weighted import NonFiniteWeightError, Weighted

__all__ = [
    "WEIGHTING_METHODS",
    "Combination",
    "GradientWeighting",
    "LossWeighting",
    "NonFiniteWeightError",
    "Weighted",
    "WeightingMethod",
    "gradient_methods",
    "make_weighting_method",
]
