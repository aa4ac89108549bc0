"""A task, declared once: name, kind, classes, loss, metrics, and its labels' augmentation rules.

Everything else is driven from these declarations: ``make_model`` builds one head per task,
``MultiTaskLoss`` computes one loss per task, ``evaluate`` keeps one meter per task, and the
augmentation audit (notebook 03) asks each task what a transform does to its labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from .task_kinds import (
    FLIP_KINDS,
    IGNORE_INDEX,
    TASK_KINDS,
    TRANSFORM_KINDS,
    VALUE_KINDS,
    LabelEffect,
    TaskKind,
    TaskMeter,
)

# The kinds' names; what each does lives in its ``TaskKind`` (``task_kinds.TASK_KINDS``).
CLASSIFICATION = "classification"
SEGMENTATION = "segmentation"
DEPTH = "depth"
NORMALS = "normals"
KINDS = tuple(TASK_KINDS)

__all__ = [
    "CLASSIFICATION", "DEPTH", "FLIP_KINDS", "IGNORE_INDEX", "KINDS", "NORMALS", "SEGMENTATION",
    "TASK_KINDS", "TRANSFORM_KINDS", "VALUE_KINDS", "LabelEffect", "Task", "TaskKind", "TaskMeter",
    "multitask_score", "select_tasks",
]


@dataclass(frozen=True)
class Task:
    """One task of a multi-task model.

    What a task's labels look like, its loss and its metrics come from its kind (``kind_spec``,
    a ``TaskKind`` of ``TASK_KINDS``); the task adds its name, classes and label effects.

    Attributes:
        name: the key of the task's output in the model's dict and of its labels in a batch.
        kind: a key of ``TASK_KINDS``: ``"classification"`` (labels int64 B),
            ``"segmentation"`` (int64 B x H x W, ``IGNORE_INDEX`` = -1 for a pixel without a
            label), ``"depth"`` (float B x H x W metres, 0 for a hole) or ``"normals"`` (float
            B x 3 x H x W unit vectors, (0, 0, 0) for a hole).
        num_classes: classes (for segmentation: per pixel, background included); required by
            the kinds with classes, left out (None) for depth and normals.
        class_names: optional names of the classes (kinds with classes only).
        label_effects: what each kind of transform does to the labels (see ``LabelEffect``);
            kinds left out take the defaults of the task's kind.
        region: for a classification task whose label describes one object of the image,
            where that object lies: ``(mask key, class)``, such as ``("mask", 1)`` for
            MultiDigits' left digit. The audit measures how much of it a geometric transform
            keeps in view (``mtlaug_lib.augment.probe``).
        min_visible: the fraction of the ``region`` that must stay in view for the label to
            stay right (the audit allows at most 1% of random draws below it).
        max_rotation: the largest rotation, in degrees either way, under which the labels stay
            right (None: any); the audit measures what a transform rotates.
        input_size: the image size ``(H, W)`` the task's head takes (None: any); the audit
            refuses a pipeline whose output has another size.
        fill: for a dense task, the label of a pixel that a geometric transform brings in from
            outside the image (None: the kind's hole value, ``IGNORE_INDEX`` for segmentation,
            0 for depth and normals, which take no other). MultiDigits' mask sets 0 (the canvas
            is black beyond its border: background); a scene's semantic map keeps
            ``IGNORE_INDEX`` (an out-of-view pixel has no label, and class 0 is the floor).
    """

    name: str
    kind: str
    num_classes: int | None = None
    class_names: tuple[str, ...] = ()
    label_effects: Mapping[str, LabelEffect] = field(default_factory=dict)
    region: tuple[str, int] | None = None
    min_visible: float = 0.9
    max_rotation: float | None = None
    input_size: tuple[int, int] | None = None
    fill: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"task name {self.name!r} must be a valid identifier string")
        if not isinstance(self.kind, str) or self.kind not in TASK_KINDS:
            raise ValueError(
                f"task {self.name!r}: kind is {self.kind!r}, expected one of {tuple(TASK_KINDS)}"
            )
        spec = self.kind_spec
        spec.check_task(self)
        effects = dict(spec.default_effects)
        for kind, effect in self.label_effects.items():
            if kind not in TRANSFORM_KINDS:
                raise ValueError(
                    f"task {self.name!r}: unknown transform kind {kind!r}, expected one of "
                    f"{TRANSFORM_KINDS}"
                )
            effects[kind] = LabelEffect(effect)
            if effects[kind] is LabelEffect.PERMUTES and kind not in FLIP_KINDS:
                raise ValueError(
                    f"task {self.name!r}: a transform of kind {kind!r} cannot permute classes; "
                    f"'permutes' is for the kinds {FLIP_KINDS}"
                )
        spec.check_effects(self, effects)
        object.__setattr__(self, "label_effects", effects)
        spec.check_fill(self, self.fill)
        self._check_geometry()

    def _check_geometry(self) -> None:
        """The arguments the audit measures against: region, min_visible, max_rotation,
        input_size."""
        if self.region is not None:
            ok = (isinstance(self.region, tuple) and len(self.region) == 2
                  and isinstance(self.region[0], str) and isinstance(self.region[1], int)
                  and not isinstance(self.region[1], bool))
            if not ok or self.kind_spec.dense:  # a region is where an image-level label lies
                raise ValueError(
                    f"task {self.name!r}: region is {self.region!r}, expected (mask key, class) "
                    "such as ('mask', 1), on a classification task"
                )
        if isinstance(self.min_visible, bool) or not isinstance(self.min_visible, (int, float)) \
                or not 0 < self.min_visible <= 1:
            raise ValueError(
                f"task {self.name!r}: min_visible is {self.min_visible!r}, expected a fraction "
                "in (0, 1]"
            )
        if self.max_rotation is not None and (
            isinstance(self.max_rotation, bool) or not isinstance(self.max_rotation, (int, float))
            or not 0 <= self.max_rotation <= 180
        ):
            raise ValueError(
                f"task {self.name!r}: max_rotation is {self.max_rotation!r}, expected degrees in "
                "[0, 180] or None"
            )
        if self.input_size is not None and not (
            isinstance(self.input_size, tuple) and len(self.input_size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                    for v in self.input_size)
        ):
            raise ValueError(
                f"task {self.name!r}: input_size is {self.input_size!r}, expected (H, W) with "
                "positive ints, or None"
            )

    # ---- what the kind does ------------------------------------------------------------------

    @property
    def kind_spec(self) -> TaskKind:
        """The task's kind: its label layout, loss, metrics and default label effects."""
        return TASK_KINDS[self.kind]

    @property
    def label_fill(self) -> float | None:
        """The label of a pixel brought in from outside the image: ``fill``, or the kind's
        ``hole_value`` when ``fill`` is None (None for a kind without labels per pixel)."""
        return self.kind_spec.hole_value if self.fill is None else self.fill

    @property
    def out_channels(self) -> int:
        """The channels of the task's head output: ``num_classes`` for classification and
        segmentation, 1 for depth, 3 for normals."""
        return self.kind_spec.out_channels(self)

    @property
    def primary_metric(self) -> str:
        """The metric that summarises the task (``accuracy``, ``miou``, ``abs_err``,
        ``mean_angle``); ``higher_is_better`` says its direction."""
        return self.kind_spec.primary_metric

    def higher_is_better(self, metric: str) -> bool:
        """Whether a larger value of ``metric`` (a key of the task's meter) is better."""
        directions = self.kind_spec.higher_is_better
        if metric not in directions:
            raise KeyError(
                f"task {self.name!r}: unknown metric {metric!r}, expected one of "
                f"{tuple(directions)}"
            )
        return directions[metric]

    def check_labels(self, output: torch.Tensor, labels: torch.Tensor) -> None:
        """Raise a clear error, naming the task, if ``labels`` do not fit this task and
        ``output``.

        Shapes: classification output B x C, labels B; segmentation output B x C x H x W,
        labels B x H x W, with C = ``num_classes``; class labels are integers in
        ``[0, num_classes)`` (segmentation: or ``IGNORE_INDEX``). Depth output B x 1 x H x W,
        labels float B x H x W >= 0; normals output B x 3 x H x W, labels float B x 3 x H x W
        unit or zero vectors; both finite.
        """
        self.kind_spec.check_labels(self, output, labels)

    def loss(
        self,
        output: torch.Tensor,
        labels: torch.Tensor,
        mix: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The kind's mean loss (a scalar tensor) over samples and valid pixels.

        Classification and segmentation: cross-entropy; depth: L1; normals: 1 - cosine. A batch
        without any valid pixel gives 0 with a zero gradient. With ``mix = (lam, perm)`` (float
        B, int64 B; from MixUp or CutMix, see ``mtlaug_lib.augment.mixing``) each sample's loss
        is ``lam * CE(labels) + (1 - lam) * CE(labels[perm])``, per pixel for segmentation with
        the sample's ``lam``; then the mean. Depth and normals refuse ``mix``: their labels
        cannot be mixed (see ``TaskKind.loss``).
        """
        return self.kind_spec.loss(self, output, labels, mix)

    def meter(self) -> TaskMeter:
        """A fresh meter of the task's metrics (``TaskMeter``)."""
        return self.kind_spec.meter_class(self)


def select_tasks(tasks: Mapping[str, Task], names: Sequence[str]) -> dict[str, Task]:
    """The tasks named in ``names``, in that order; an unknown name is a clear error."""
    unknown = [n for n in names if n not in tasks]
    if unknown:
        raise KeyError(f"unknown task(s) {unknown}, expected names from {tuple(tasks)}")
    return {n: tasks[n] for n in names}


def multitask_score(
    multi: Mapping[str, float | Mapping[str, float]],
    single: Mapping[str, float | Mapping[str, float]],
    tasks: Mapping[str, Task],
) -> float:
    """The multi-task score: the mean relative change against single-task, signed so that
    better is positive (Maninis et al. 2019; Vandenhende et al. 2021).

    ``Delta = mean_k (-1)^l_k (M_k - S_k) / S_k`` with ``l_k = 1`` where lower is better (an
    error, an angle), as each task's kind declares (``Task.higher_is_better``). ``multi`` and
    ``single`` map each task of ``tasks`` either to a number, its primary metric (then ``k``
    runs over tasks), or to a dict ``{metric: value}`` such as ``evaluate`` returns (then ``k``
    runs over every metric of the kind's ``metrics``, the loss and other keys left out: the
    mean over all metrics, as ``Delta_m`` is reported on NYUv2). Positive when sharing helps on
    average; returned as a fraction (0.02 means +2%).
    """
    if not tasks:
        raise ValueError("multitask_score: argument 'tasks' is empty, expected at least one task")
    missing = [t for t in tasks if t not in multi or t not in single]
    if missing:
        raise KeyError(f"multitask_score: no metric for task(s) {missing}")
    terms = []  # (task, metric, multi value, single value)
    for t, task in tasks.items():
        m, s = multi[t], single[t]
        if isinstance(m, Mapping) != isinstance(s, Mapping):
            raise TypeError(
                f"multitask_score: task {t!r} has a {type(m).__name__} in 'multi' and a "
                f"{type(s).__name__} in 'single', expected two numbers or two dicts of metrics"
            )
        if not isinstance(m, Mapping):
            terms.append((t, task.primary_metric, m, s))
            continue
        for metric in task.kind_spec.metrics:
            absent = [name for name, d in (("multi", m), ("single", s)) if metric not in d]
            if absent:
                raise KeyError(
                    f"multitask_score: task {t!r} has no metric {metric!r} in {absent}, "
                    f"expected the {task.kind} metrics {task.kind_spec.metrics}"
                )
            terms.append((t, metric, m[metric], s[metric]))
    zero = list(dict.fromkeys(t for t, _, _, s in terms if s == 0))  # in the tasks' order
    if zero:
        raise ValueError(
            f"multitask_score: the single-task metric of task(s) {zero} is 0, so the relative "
            "change is undefined"
        )
    return sum(
        (m - s) / s if tasks[t].higher_is_better(metric) else (s - m) / s
        for t, metric, m, s in terms
    ) / len(terms)
