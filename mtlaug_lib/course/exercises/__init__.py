"""Checks for the notebooks' exercises: each says right, or what is wrong and a hint.

A check prints one line starting with ``Correct`` when the answer is right, and raises
``ExerciseError`` (an ``AssertionError``) with a helpful message when it is not, so a wrong
answer stops "Run all" at the exercise, as a failing test would.

One module per notebook, named after it (``backbone`` for 01, ``heads`` for 02,
``augmentation`` for 03, ``joint_vs_alternating`` for 04, ``loss_weighting`` for 05, ``dense``
for 06, ``architectures`` for 07, ``scaling`` for 08), and ``common`` for what they share. The
notebooks call the checks from here:
``from mtlaug_lib import exercises; exercises.check_feature_size(...)``.
"""

from .architectures import check_branch_parameters, check_cross_stitch
from .augmentation import check_mixup_loss, check_safe_pipeline
from .backbone import check_conv_parameters, check_feature_size
from .common import ExerciseError
from .dense import check_flip_normals, check_rotate_normals, check_zoom_depth
from .heads import check_multitask_score, check_sum_task
from .joint_vs_alternating import check_alternating_step, check_gradient_cosine
from .loss_weighting import check_mgda_two_tasks, check_pcgrad_projection
from .scaling import check_global_gram, check_scaler_step

__all__ = [
    "ExerciseError",
    "check_alternating_step",
    "check_branch_parameters",
    "check_conv_parameters",
    "check_cross_stitch",
    "check_feature_size",
    "check_flip_normals",
    "check_global_gram",
    "check_gradient_cosine",
    "check_mgda_two_tasks",
    "check_mixup_loss",
    "check_multitask_score",
    "check_pcgrad_projection",
    "check_rotate_normals",
    "check_safe_pipeline",
    "check_scaler_step",
    "check_sum_task",
    "check_zoom_depth",
]
