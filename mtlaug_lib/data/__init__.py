"""Data sets and loaders. Each data set module also declares its tasks.

- ``multidigits``: the course's running example (two real handwritten digits and a mask, built
  from scikit-learn's digits, nothing to download) and MultiMNIST built the same way;
- ``loaders``: ``TensorLoader`` slices batches from in-memory tensors; ``map_batches``.

Imports the core only.
"""

from .loaders import MappedLoader, TensorLoader, map_batches
from .multidigits import (
    CANVAS,
    DIGIT,
    DIGIT_MAX_ROTATION,
    MASK_CLASSES,
    ComposedDigits,
    MultiDigits,
    MultiMNIST,
    compose_pairs,
    load_mnist,
    load_multidigits,
    multidigits_tasks,
    place_on_canvas,
    sklearn_digits_as_mnist,
    source_split,
)

__all__ = [
    "CANVAS",
    "DIGIT",
    "DIGIT_MAX_ROTATION",
    "MASK_CLASSES",
    "ComposedDigits",
    "MappedLoader",
    "MultiDigits",
    "MultiMNIST",
    "TensorLoader",
    "compose_pairs",
    "load_mnist",
    "load_multidigits",
    "map_batches",
    "multidigits_tasks",
    "place_on_canvas",
    "sklearn_digits_as_mnist",
    "source_split",
]
