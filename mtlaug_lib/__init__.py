"""mtlaug_lib: the library of the course "Multi-task learning and data augmentation in PyTorch".

One module per concept; the names used by the notebooks are re-exported here.
"""

from . import exercises, gradients, plots
from .audit import LabelSafetyError, audit, check_pipeline, declare_kind, transform_kinds
from .augment import RandomFlip, SampleTransform
from .batch_augment import AugmentParams, BatchAugment, mask_alignment
from .checkpoint import load_checkpoint, save_checkpoint
from .data import (
    MultiDigits,
    MultiMNIST,
    TensorLoader,
    compose_pairs,
    load_mnist,
    load_multidigits,
    map_batches,
    sklearn_digits_as_mnist,
    source_split,
)
from .losses import MultiTaskLoss
from .mixing import CutMix, MixUp
from .models import (
    AdaptiveFeatureExtractor,
    Classifier,
    DenseHead,
    FeatureExtractor,
    MultiTaskModel,
    count_macs,
    count_parameters,
    make_model,
    shape_trace,
)
from .strategies import (
    STRATEGIES,
    Alternating,
    Sequential,
    cosine_matrix,
    gradient_conflict,
    make_strategy,
    pairwise_cosines,
    task_gradients,
)
from .tasks import LabelEffect, Task, multidigits_tasks, multitask_score, select_tasks
from .train import History, Joint, NonFiniteLossError, Strategy, evaluate, train
from .utils import Stopwatch, get_device, seed_everything, set_deterministic, synchronize
from .weighting import WEIGHTINGS, NonFiniteWeightError, Weighted, Weighting, make_weighting

__version__ = "0.1.0"

__all__ = [
    "Stopwatch",
    "synchronize",
    "WEIGHTINGS",
    "NonFiniteWeightError",
    "Weighted",
    "Weighting",
    "gradients",
    "make_weighting",
    "STRATEGIES",
    "Alternating",
    "AugmentParams",
    "BatchAugment",
    "CutMix",
    "LabelSafetyError",
    "MixUp",
    "RandomFlip",
    "SampleTransform",
    "Sequential",
    "audit",
    "check_pipeline",
    "cosine_matrix",
    "declare_kind",
    "gradient_conflict",
    "make_strategy",
    "mask_alignment",
    "pairwise_cosines",
    "task_gradients",
    "transform_kinds",
    "History",
    "Joint",
    "LabelEffect",
    "MultiTaskLoss",
    "NonFiniteLossError",
    "Strategy",
    "Task",
    "count_macs",
    "evaluate",
    "load_checkpoint",
    "make_model",
    "map_batches",
    "multidigits_tasks",
    "multitask_score",
    "save_checkpoint",
    "select_tasks",
    "train",
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
