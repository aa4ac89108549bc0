"""mtlaug_lib: the library of the course "Multi-task learning and data augmentation in PyTorch".

The folder tree is the architecture; each package imports only the ones before it:

- ``core``: tasks, models, the multi-task loss, the batch format, checkpoints, checks, devices;
- ``data``: the data sets (each with its tasks) and in-memory loaders;
- ``augment``: label-safe augmentation of samples and batches, mixing, and the audit;
- ``training``: the loop, update strategies, weighting methods and gradient maths;
- ``course``: exercise checks, figures, notebook execution and the student edition. Loaded on
  first use (``from mtlaug_lib import exercises, plots``), so ``import mtlaug_lib`` does not
  import matplotlib.

The names the notebooks use are re-exported here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .augment.alignment import mask_alignment
from .augment.audit import LabelSafetyError, audit, declare_kind, transform_kinds
from .augment.batch import BatchAugment
from .augment.flip import RandomFlip
from .augment.functional import AugmentParams
from .augment.mixing import CutMix, MixUp
from .augment.registry import AUGMENTERS
from .augment.repair import check_pipeline
from .augment.sample import SampleTransform
from .core.architectures import ARCHITECTURES, make_architecture
from .core.checkpoint import load_checkpoint, save_checkpoint
from .core.encoder_decoder import EncoderDecoder
from .core.losses import MultiTaskLoss
from .core.models import (
    AdaptiveFeatureExtractor,
    Classifier,
    ConvHead,
    DenseHead,
    FeatureExtractor,
    MultiTaskModel,
    PooledClassifier,
    count_macs,
    count_parameters,
    make_model,
    shape_trace,
)
from .core.task_kinds import IGNORE_INDEX, TASK_KINDS, TaskKind
from .core.tasks import LabelEffect, Task, multitask_score, select_tasks
from .core.utils import Stopwatch, get_device, seed_everything, set_deterministic, synchronize
from .data import (
    MultiDigits,
    MultiMNIST,
    NYUv2,
    Scenes,
    StepBudget,
    TensorLoader,
    compose_pairs,
    load_mnist,
    load_multidigits,
    load_scenes,
    map_batches,
    multidigits_tasks,
    nyuv2_tasks,
    scenes_tasks,
    sklearn_digits_as_mnist,
    source_split,
)
from .training import gradients
from .training.conflict import cosine_matrix, gradient_conflict, pairwise_cosines, task_gradients
from .training.loop import History, evaluate, train
from .training.registry import make_strategy
from .training.strategies import STRATEGIES, Alternating, Joint, Sequential
from .training.strategy import NonFiniteLossError, Strategy
from .training.weighting import (
    WEIGHTING_METHODS,
    NonFiniteWeightError,
    Weighted,
    WeightingMethod,
    make_weighting_method,
)

# The course's modules, loaded on first use: the library itself never needs them.
_COURSE_MODULES = ("exercises", "plots", "report", "parallel", "execute", "student")


def __getattr__(name: str) -> ModuleType:
    if name in _COURSE_MODULES:
        module = importlib.import_module(f".course.{name}", __name__)
        globals()[name] = module  # later lookups find it directly
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_COURSE_MODULES])


__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES",
    "make_architecture",
    "scenes_tasks",
    "nyuv2_tasks",
    "load_scenes",
    "Scenes",
    "NYUv2",
    "Stopwatch",
    "synchronize",
    "WEIGHTING_METHODS",
    "NonFiniteWeightError",
    "Weighted",
    "WeightingMethod",
    "gradients",
    "make_weighting_method",
    "STRATEGIES",
    "Alternating",
    "AUGMENTERS",
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
    "IGNORE_INDEX",
    "LabelEffect",
    "MultiTaskLoss",
    "TASK_KINDS",
    "TaskKind",
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
    "ConvHead",
    "DenseHead",
    "EncoderDecoder",
    "FeatureExtractor",
    "PooledClassifier",
    "MultiDigits",
    "MultiMNIST",
    "MultiTaskModel",
    "StepBudget",
    "TensorLoader",
    "compose_pairs",
    "count_parameters",
    "exercises",
    "get_device",
    "load_mnist",
    "load_multidigits",
    "parallel",
    "plots",
    "report",
    "seed_everything",
    "set_deterministic",
    "shape_trace",
    "sklearn_digits_as_mnist",
    "source_split",
]
