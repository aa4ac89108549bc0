"""A task, declared once: name, kind, classes, loss, metrics, and its labels' augmentation rules.

Everything else is driven from these declarations: ``make_model`` builds one head per task,
``MultiTaskLoss`` computes one loss per task, ``evaluate`` keeps one meter per task, and the
augmentation audit (notebook 03) asks each task what a transform does to its labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

import torch
import torch.nn.functional as F

CLASSIFICATION = "classification"
SEGMENTATION = "segmentation"
KINDS = (CLASSIFICATION, SEGMENTATION)


class LabelEffect(str, Enum):
    """What a kind of transform does to a task's labels."""

    KEEPS = "keeps"  # the labels stay right as they are (colour jitter for a digit class)
    MOVES = "moves"  # the labels must go through the same transform (a mask under rotation)
    BREAKS = "breaks"  # the labels become wrong (a mirror image of a left digit)
    # The classes are exchanged (a flip puts the left digit's pixels on the right): a label map
    # that exchanges them back repairs the labels. Only flips can permute classes.
    PERMUTES = "permutes"
    MIXES = "mixes"  # the labels must be mixed with the images (MixUp, CutMix)


# Kinds of transform that the augmentation audit knows (``mtlaug_lib.augment.kinds`` maps each
# transform to one). Flips get their own kinds because a task often has a symmetry on one axis
# only; ``occlusion`` (random erasing) hides pixels that a mask still labels; ``mixing`` blends
# whole images (MixUp) while ``region_mixing`` pastes a region (CutMix), which moves a mask
# with the image instead of mixing it.
TRANSFORM_KINDS = (
    "photometric", "geometric", "horizontal_flip", "vertical_flip", "occlusion", "mixing",
    "region_mixing",
)
FLIP_KINDS = ("horizontal_flip", "vertical_flip")  # the kinds that can permute a task's classes

_DEFAULT_EFFECTS = {
    CLASSIFICATION: {
        "photometric": LabelEffect.KEEPS,
        "geometric": LabelEffect.KEEPS,  # small rotations, shifts and scales keep a class
        "horizontal_flip": LabelEffect.KEEPS,
        "vertical_flip": LabelEffect.KEEPS,
        "occlusion": LabelEffect.KEEPS,  # Cutout: a partly hidden object keeps its class
        "mixing": LabelEffect.MIXES,
        "region_mixing": LabelEffect.MIXES,  # by the area fraction of each image
    },
    SEGMENTATION: {
        "photometric": LabelEffect.KEEPS,
        "geometric": LabelEffect.MOVES,
        "horizontal_flip": LabelEffect.MOVES,
        "vertical_flip": LabelEffect.MOVES,
        "occlusion": LabelEffect.BREAKS,  # erased pixels keep their labels in the mask
        "mixing": LabelEffect.MIXES,  # a per-pixel mixed loss
        "region_mixing": LabelEffect.MOVES,  # the mask is pasted with the image
    },
}


@dataclass(frozen=True)
class Task:
    """One task of a multi-task model.

    Attributes:
        name: the key of the task's output in the model's dict and of its labels in a batch.
        kind: ``"classification"`` (labels int64 B) or ``"segmentation"`` (labels int64 B x H x W).
        num_classes: classes (for segmentation: per pixel, background included).
        class_names: optional names of the classes.
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
    """

    name: str
    kind: str
    num_classes: int
    class_names: tuple[str, ...] = ()
    label_effects: Mapping[str, LabelEffect] = field(default_factory=dict)
    region: tuple[str, int] | None = None
    min_visible: float = 0.9
    max_rotation: float | None = None
    input_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"task name {self.name!r} must be a valid identifier string")
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind is {self.kind!r}, expected one of {KINDS}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or (
            self.num_classes < 2
        ):
            raise ValueError(
                f"task {self.name!r}: num_classes is {self.num_classes!r}, expected an int >= 2"
            )
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"task {self.name!r}: {len(self.class_names)} class names for "
                f"{self.num_classes} classes"
            )
        effects = dict(_DEFAULT_EFFECTS[self.kind])
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
        object.__setattr__(self, "label_effects", effects)
        self._check_geometry()

    def _check_geometry(self) -> None:
        """The arguments the audit measures against: region, min_visible, max_rotation,
        input_size."""
        if self.region is not None:
            ok = (isinstance(self.region, tuple) and len(self.region) == 2
                  and isinstance(self.region[0], str) and isinstance(self.region[1], int)
                  and not isinstance(self.region[1], bool))
            if not ok or self.kind != CLASSIFICATION:
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

    # ---- labels and loss ---------------------------------------------------------------------

    @property
    def primary_metric(self) -> str:
        """The metric that summarises the task (higher is better for both kinds)."""
        return "accuracy" if self.kind == CLASSIFICATION else "miou"

    def check_labels(self, output: torch.Tensor, labels: torch.Tensor) -> None:
        """Raise a clear error if ``labels`` do not fit this task and ``output``.

        Shapes: classification output B x C, labels B; segmentation output B x C x H x W,
        labels B x H x W, with C = ``num_classes``. Labels must be integers in
        ``[0, num_classes)``.
        """
        if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise TypeError(
                f"task {self.name!r}: labels have dtype {labels.dtype}, expected integer class "
                "indices"
            )
        ndim = 2 if self.kind == CLASSIFICATION else 4
        if output.ndim != ndim or output.shape[1] != self.num_classes:
            layout = "B x C" if self.kind == CLASSIFICATION else "B x C x H x W"
            raise ValueError(
                f"task {self.name!r}: the output has shape {tuple(output.shape)}, expected "
                f"{layout} with C = {self.num_classes} classes (a {self.kind} head)"
            )
        expected = (output.shape[0],) + tuple(output.shape[2:])
        if tuple(labels.shape) != expected:
            raise ValueError(
                f"task {self.name!r}: labels have shape {tuple(labels.shape)}, expected "
                f"{expected} to match the output {tuple(output.shape)}"
            )
        if labels.numel():
            lo, hi = int(labels.min()), int(labels.max())
            if lo < 0 or hi >= self.num_classes:
                raise ValueError(
                    f"task {self.name!r}: labels range over [{lo}, {hi}], expected classes in "
                    f"[0, {self.num_classes - 1}]"
                )

    def loss(
        self,
        output: torch.Tensor,
        labels: torch.Tensor,
        mix: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Mean cross-entropy (over samples, and pixels for segmentation); a scalar tensor.

        With ``mix = (lam, perm)`` (float B, int64 B; from MixUp or CutMix, see
        ``mtlaug_lib.augment.mixing``) each sample's loss is ``lam * CE(labels) + (1 - lam) *
        CE(labels[perm])``, per pixel for segmentation with the sample's ``lam``; then the mean.
        """
        if mix is None:
            return F.cross_entropy(output, labels.long())
        lam, perm = mix
        if lam.shape != (len(labels),) or perm.shape != (len(labels),):
            raise ValueError(
                f"task {self.name!r}: argument 'mix' holds lam {tuple(lam.shape)} and perm "
                f"{tuple(perm.shape)}, expected both of shape ({len(labels)},), one per sample"
            )
        labels = labels.long()
        own = F.cross_entropy(output, labels, reduction="none")  # B (x H x W)
        partner = F.cross_entropy(output, labels[perm], reduction="none")
        lam = lam.to(own.dtype).view(-1, *[1] * (own.ndim - 1))  # broadcast over pixels
        return (lam * own + (1 - lam) * partner).mean()

    def meter(self) -> TaskMeter:
        return TaskMeter(self)


class TaskMeter:
    """Accumulates a task's metrics over batches.

    Classification: ``accuracy``. Segmentation: ``miou`` (mean over classes of
    intersection / union, from a confusion matrix summed over all pixels) and
    ``pixel_accuracy``. Both: the mean ``loss`` per sample.
    """

    def __init__(self, task: Task) -> None:
        self.task = task
        self.confusion = torch.zeros(task.num_classes, task.num_classes, dtype=torch.int64)
        self.loss_sum = 0.0
        self.loss_samples = 0  # samples whose batch came with a loss
        self.samples = 0

    @torch.no_grad()
    def update(self, output: torch.Tensor, labels: torch.Tensor, loss: float | None = None) -> None:
        """output: B x C (x H x W) logits; labels: B (x H x W); loss: the batch's mean loss."""
        self.task.check_labels(output, labels)  # else a bad label corrupts the confusion matrix
        k = self.task.num_classes
        pred = output.argmax(dim=1).flatten()
        index = labels.flatten().long() * k + pred
        self.confusion += torch.bincount(index, minlength=k * k).view(k, k).cpu()
        if loss is not None:
            self.loss_sum += float(loss) * len(output)
            self.loss_samples += len(output)
        self.samples += len(output)

    def compute(self) -> dict[str, float]:
        c = self.confusion.double()
        correct = float(c.diag().sum())
        total = float(c.sum())
        result: dict[str, float] = {}
        if self.loss_samples:
            result["loss"] = self.loss_sum / self.loss_samples
        if self.task.kind == CLASSIFICATION:
            result["accuracy"] = correct / total if total else math.nan
        else:
            union = c.sum(0) + c.sum(1) - c.diag()
            present = union > 0  # a class absent from labels and predictions does not count
            iou = c.diag()[present] / union[present]
            result["miou"] = float(iou.mean()) if present.any() else math.nan
            result["pixel_accuracy"] = correct / total if total else math.nan
        return result


def select_tasks(tasks: Mapping[str, Task], names: Sequence[str]) -> dict[str, Task]:
    """The tasks named in ``names``, in that order; an unknown name is a clear error."""
    unknown = [n for n in names if n not in tasks]
    if unknown:
        raise KeyError(f"unknown task(s) {unknown}, expected names from {tuple(tasks)}")
    return {n: tasks[n] for n in names}


def multitask_score(
    multi: Mapping[str, float], single: Mapping[str, float], tasks: Mapping[str, Task]
) -> float:
    """Vandenhende et al.'s multi-task score: the mean relative change against single-task.

    ``multi`` and ``single`` map each task to its primary metric (higher is better), so the
    score is ``mean_t (multi_t - single_t) / single_t``: positive when sharing helps on
    average. Returned as a fraction (0.02 means +2%).
    """
    if not tasks:
        raise ValueError("multitask_score: argument 'tasks' is empty, expected at least one task")
    missing = [t for t in tasks if t not in multi or t not in single]
    if missing:
        raise KeyError(f"multitask_score: no metric for task(s) {missing}")
    zero = [t for t in tasks if single[t] == 0]
    if zero:
        raise ValueError(
            f"multitask_score: the single-task metric of task(s) {zero} is 0, so the relative "
            "change is undefined"
        )
    return sum((multi[t] - single[t]) / single[t] for t in tasks) / len(tasks)
