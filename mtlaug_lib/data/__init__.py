"""Data sets and loaders. Each data set module also declares its tasks.

- ``multidigits``: the course's running example (two real handwritten digits and a mask, built
  from scikit-learn's digits, nothing to download) and MultiMNIST built the same way;
- ``loaders``: ``TensorLoader`` slices batches from in-memory tensors; ``map_batches``;
  ``StepBudget`` (a number of steps across epochs);
- ``nyuv2``: ``NYUv2``, the real NYUv2 in MTAN's pre-processed layout, for users who have a copy
  (nothing downloads), read lazily into the course's dense-scene conventions;
- ``scenes``: ``Scenes``, procedurally rendered rooms with exact semantic, depth and normals
  labels (nothing downloads); ``geometry``: the pinhole camera they share (rays,
  back-projection, normals from depth).

Imports the core only.
"""

from .loaders import MappedLoader, StepBudget, TensorLoader, map_batches
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
from .nyuv2 import (
    NYUV2_CLASSES,
    NYUV2_NUM_CLASSES,
    NYUV2_SIZE,
    NYUV2_SPLIT_SIZES,
    NYUv2,
    nyuv2_tasks,
)
from .scenes import (
    SCENE_CLASSES,
    Scenes,
    SceneSettings,
    load_scenes,
    scene_settings,
    scenes_tasks,
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
    "NYUV2_CLASSES",
    "NYUV2_NUM_CLASSES",
    "NYUV2_SIZE",
    "NYUV2_SPLIT_SIZES",
    "NYUv2",
    "SCENE_CLASSES",
    "SceneSettings",
    "Scenes",
    "StepBudget",
    "TensorLoader",
    "compose_pairs",
    "load_mnist",
    "load_multidigits",
    "load_scenes",
    "map_batches",
    "multidigits_tasks",
    "nyuv2_tasks",
    "place_on_canvas",
    "scene_settings",
    "scenes_tasks",
    "sklearn_digits_as_mnist",
    "source_split",
]
