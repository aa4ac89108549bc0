"""mtlaug_lib: the library of the course "Multi-task learning and data augmentation in PyTorch".

One module per concept; the names used by the notebooks are re-exported here.
"""

from . import exercises, plots
from .data import (
    MultiDigits,
    MultiMNIST,
    TensorLoader,
    compose_pairs,
    load_mnist,
    load_multidigits,
    sklearn_digits_as_mnist,
    source_split,
)
from .models import (
    AdaptiveFeatureExtractor,
    Classifier,
    DenseHead,
    FeatureExtractor,
    MultiTaskModel,
    count_parameters,
    shape_trace,
)
from .utils import get_device, seed_everything, set_deterministic

__version__ = "0.1.0"

__all__ = [
    "AdaptiveFeatureExtractor",
    "Classifier",
    "DenseHead",
    "FeatureExtractor",
    "MultiDigits",
    "MultiMNIST",
    "MultiTaskModel",
    "TensorLoader",
    "compose_pairs",
    "count_parameters",
    "exercises",
    "get_device",
    "load_mnist",
    "load_multidigits",
    "plots",
    "seed_everything",
    "set_deterministic",
    "shape_trace",
    "sklearn_digits_as_mnist",
    "source_split",
]
