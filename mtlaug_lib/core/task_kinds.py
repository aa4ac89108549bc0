"""Kinds of task: what a task's labels look like, its loss, its metrics, its default label effects.

A ``Task`` (``tasks``) names its kind by a string; the kind's object in ``TASK_KINDS`` does the
work, so no code branches on a kind's name. A new kind is one ``TaskKind`` subclass (with its
``TaskMeter``) and one registry entry:

- ``"classification"``: one class per image (int64 B), cross-entropy, ``accuracy``;
- ``"segmentation"``: one class per pixel (int64 B x H x W, ``IGNORE_INDEX`` = -1 for a pixel
  without a label), cross-entropy over labelled pixels, ``miou`` and ``pixel_accuracy``;
- ``"depth"``: metric depth in metres per pixel (float B x H x W, 0 for a hole), L1 over valid
  pixels, ``abs_err`` and ``rel_err``;
- ``"normals"``: unit surface normals per pixel (float B x 3 x H x W, (0, 0, 0) for a hole),
  1 - cosine over valid pixels, angle errors in degrees.

The metrics are those the NYUv2 literature reports, pooled over every valid pixel of the
evaluation set. Each kind declares which of its metrics are higher-is-better, so the multi-task
score (``tasks.multitask_score``) signs a change without guessing from metric names.

This module also holds the vocabulary of label effects (``LabelEffect``, ``TRANSFORM_KINDS``;
re-exported by ``tasks``) because each kind declares its defaults in it. Transform kinds are a
different thing: ``mtlaug_lib.augment.kinds`` maps a transform to one of ``TRANSFORM_KINDS``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from typing import ClassVar, Protocol

import torch
import torch.nn.functional as F

IGNORE_INDEX = -1  # a segmentation label for a pixel without a valid class (as NYUv2's void)


class LabelEffect(str, Enum):
    """What a kind of transform does to a task's labels."""

    KEEPS = "keeps"  # the labels stay right as they are (colour jitter for a digit class)
    MOVES = "moves"  # the labels must go through the same transform (a mask under rotation)
    BREAKS = "breaks"  # the labels become wrong (a mirror image of a left digit)
    # The classes are exchanged (a flip puts the left digit's pixels on the right): a label map
    # that exchanges them back repairs the labels. Only flips can permute classes.
    PERMUTES = "permutes"
    MIXES = "mixes"  # the labels must be mixed with the images (MixUp, CutMix)
    # The labels move with the image AND their values change with it: a flip negates the
    # normals' x component, a zoom by s divides depth by s (``TaskKind.transform_values``).
    # Only for geometric transforms and flips, and only for kinds that have a value transform.
    TRANSFORMS = "transforms"


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
# The kinds under which label values can change with the image ("transforms"): those that move
# pixels by a linear map about the image centre (a shift moves pixels but changes no value).
VALUE_KINDS = ("geometric", *FLIP_KINDS)


class TaskLike(Protocol):
    """What a kind reads of a task (``tasks.Task`` has it; a protocol keeps this module below
    ``tasks`` in the import graph)."""

    name: str
    kind: str
    num_classes: int | None
    class_names: tuple[str, ...]


# ---- meters ----------------------------------------------------------------------------------


class TaskMeter:
    """Accumulates a task's loss and metrics over batches; ``compute()`` gives a dict of floats.

    ``TaskMeter(task)`` builds the meter of the task's kind (``TaskKind.meter_class``), as
    ``pathlib.Path`` builds a ``PosixPath``. The loss is averaged per sample over the batches
    that came with one (``"loss"``, left out if none did); each kind's meter adds its metrics
    through two hooks, ``accumulate`` and ``metrics``. Metrics over no valid label are NaN.
    """

    def __new__(cls, task: TaskLike | None = None) -> TaskMeter:
        if cls is TaskMeter:  # (task may be None only for a subclass: copy and pickle)
            if task is None:
                raise TypeError("TaskMeter() needs the task whose metrics it accumulates")
            cls = TASK_KINDS[task.kind].meter_class
        return super().__new__(cls)

    def __init__(self, task: TaskLike) -> None:
        self.task = task
        self.loss_sum = 0.0
        self.loss_samples = 0  # samples whose batch came with a loss
        self.samples = 0

    @torch.no_grad()
    def update(self, output: torch.Tensor, labels: torch.Tensor, loss: float | None = None) -> None:
        """output and labels as the task's kind lays them out; loss: the batch's mean loss."""
        # Checked first: a bad label would corrupt the sums.
        TASK_KINDS[self.task.kind].check_labels(self.task, output, labels)
        self.accumulate(output, labels)
        if loss is not None:
            self.loss_sum += float(loss) * len(output)
            self.loss_samples += len(output)
        self.samples += len(output)

    def compute(self) -> dict[str, float]:
        result: dict[str, float] = {}
        if self.loss_samples:
            result["loss"] = self.loss_sum / self.loss_samples
        result.update(self.metrics())
        return result

    def accumulate(self, output: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a checked batch to the kind's sums (a hook)."""
        raise NotImplementedError

    def metrics(self) -> dict[str, float]:
        """The kind's metrics from the sums (a hook)."""
        raise NotImplementedError


class ConfusionMeter(TaskMeter):
    """Class kinds: a confusion matrix (labels x predictions) summed over samples or pixels.

    Classification: ``accuracy``. Segmentation: ``miou`` (mean over classes of intersection /
    union; a class absent from labels and predictions does not count) and ``pixel_accuracy``;
    pixels labelled ``IGNORE_INDEX`` are left out of both.
    """

    def __init__(self, task: TaskLike) -> None:
        super().__init__(task)
        k = int(task.num_classes)
        self.confusion = torch.zeros(k, k, dtype=torch.int64)

    def accumulate(self, output: torch.Tensor, labels: torch.Tensor) -> None:
        k = self.confusion.shape[0]
        pred = output.argmax(dim=1).flatten()
        labels = labels.flatten().long()
        if TASK_KINDS[self.task.kind].ignore_index is not None:
            valid = labels != IGNORE_INDEX
            labels, pred = labels[valid], pred[valid]
        index = labels * k + pred
        self.confusion += torch.bincount(index, minlength=k * k).view(k, k).cpu()

    def metrics(self) -> dict[str, float]:
        return TASK_KINDS[self.task.kind].confusion_metrics(self.confusion)


class DepthMeter(TaskMeter):
    """Depth: ``abs_err`` (mean |d - d*|, metres) and ``rel_err`` (mean |d - d*| / d*), pooled
    over every valid pixel (d* > 0) of all batches, as the NYUv2 literature reports them."""

    def __init__(self, task: TaskLike) -> None:
        super().__init__(task)
        self.pixels = 0
        self.abs_sum = 0.0
        self.rel_sum = 0.0

    def accumulate(self, output: torch.Tensor, labels: torch.Tensor) -> None:
        pred, target = output[:, 0].double(), labels.double()  # float64: sums of many pixels
        valid = target > 0
        error = (pred - target).abs()[valid]
        self.pixels += int(valid.sum())
        self.abs_sum += float(error.sum())
        self.rel_sum += float((error / target[valid]).sum())

    def metrics(self) -> dict[str, float]:
        n = self.pixels
        return {"abs_err": self.abs_sum / n if n else math.nan,
                "rel_err": self.rel_sum / n if n else math.nan}


class NormalsMeter(TaskMeter):
    """Normals: angle errors in degrees over every valid pixel of all batches.

    ``mean_angle``, ``median_angle`` and the fractions of pixels with an error below 11.25,
    22.5 and 30 degrees (``within_11.25``, ``within_22.5``, ``within_30``). The angle is
    ``acos`` of the cosine between the normalised output and the normalised label, in float64
    (``acos`` of float32 or float16 products adds phantom error near 0 degrees); a zero output
    has no direction and counts as 90 degrees (cosine 0, as in the loss). The median comes from
    a histogram of ``BIN`` = 0.01-degree bins over [0, 180] (constant memory over any evaluation
    set): the centre of the bin holding the lower median, within 0.005 degrees of the exact
    lower median (``torch.median``).
    """

    BIN = 0.01  # degrees
    THRESHOLDS = (11.25, 22.5, 30.0)

    def __init__(self, task: TaskLike) -> None:
        super().__init__(task)
        self.pixels = 0
        self.angle_sum = 0.0
        self.within = [0] * len(self.THRESHOLDS)
        self.histogram = torch.zeros(round(180 / self.BIN), dtype=torch.int64)

    def accumulate(self, output: torch.Tensor, labels: torch.Tensor) -> None:
        angle = angles(output, labels)[valid_normals(labels)]
        self.pixels += angle.numel()
        self.angle_sum += float(angle.sum())
        for i, t in enumerate(self.THRESHOLDS):
            self.within[i] += int((angle < t).sum())
        bins = (angle / self.BIN).long().clamp_(0, len(self.histogram) - 1)  # 180 in the last
        self.histogram += torch.bincount(bins, minlength=len(self.histogram)).cpu()

    def metrics(self) -> dict[str, float]:
        n = self.pixels
        if not n:
            return {name: math.nan for name in NormalsKind.metrics}
        # The lower median, as torch.median: the ((n + 1) // 2)-th smallest angle.
        median_bin = int(torch.searchsorted(self.histogram.cumsum(0), (n + 1) // 2))
        result = {"mean_angle": self.angle_sum / n, "median_angle": (median_bin + 0.5) * self.BIN}
        for t, count in zip(self.THRESHOLDS, self.within, strict=True):
            result[f"within_{t:g}"] = count / n
        return result


# ---- the maths shared by the normals' loss and meter ----------------------------------------


def valid_normals(labels: torch.Tensor) -> torch.Tensor:
    """B x 3 x H x W labels -> B x H x W bool: True where the label is not (0, 0, 0)."""
    return labels.ne(0).any(dim=1)


def unit(vectors: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Normalise along dim 1; a vector shorter than ``eps`` is divided by ``eps`` instead, so a
    zero vector stays zero with a finite gradient (large near 0: a tiny vector has no stable
    direction)."""
    return vectors / torch.linalg.vector_norm(vectors, dim=1, keepdim=True).clamp_min(eps)


def angles(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """B x 3 x H x W outputs and labels -> B x H x W angles in degrees (float64, no gradient),
    between the normalised vectors; a zero vector gives 90 degrees."""
    cosine = (unit(output.detach().double()) * unit(labels.double())).sum(dim=1)
    return torch.rad2deg(torch.acos(cosine.clamp(-1.0, 1.0)))


# ---- kinds -------------------------------------------------------------------------------------


class TaskKind:
    """What a kind of task declares; ``TASK_KINDS`` holds one instance of each.

    Class attributes: ``name`` (the key in ``TASK_KINDS`` and ``Task.kind``); ``label_layout``
    (the labels of a batch, in words); ``label_dtype`` (the labels' dtype in a batch);
    ``dense`` (a label per pixel, not per image); ``has_classes`` (the task needs
    ``num_classes``); ``mixed_loss`` (the loss can mix two samples' labels, so MixUp may declare
    ``mixes``); ``hole_value`` (the label value of a pixel without a label, such as a
    transform's fill outside the image; None: every label is valid); ``ignore_index`` (for
    class kinds, the class index that marks such a pixel, or None);
    ``primary_metric``; ``metrics`` (the metrics the meter reports besides ``loss``, those the
    multi-task score uses); ``higher_is_better`` (for every key the meter reports, ``loss``
    included); ``default_effects`` (a ``LabelEffect`` for every one of ``TRANSFORM_KINDS``);
    ``meter_class``; ``has_value_transform`` (the kind's label values change under a geometric
    transform, through ``transform_values``, so its tasks may declare ``transforms``).
    """

    name: ClassVar[str]
    label_layout: ClassVar[str]
    label_dtype: ClassVar[torch.dtype]
    dense: ClassVar[bool]
    has_classes: ClassVar[bool]
    mixed_loss: ClassVar[bool]
    hole_value: ClassVar[float | None] = None
    ignore_index: ClassVar[int | None] = None
    primary_metric: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]
    higher_is_better: ClassVar[Mapping[str, bool]]
    default_effects: ClassVar[Mapping[str, LabelEffect]]
    meter_class: ClassVar[type[TaskMeter]]
    has_value_transform: ClassVar[bool] = False

    def check_task(self, task: TaskLike) -> None:
        """Raise a clear error if the task's ``num_classes`` or ``class_names`` do not fit."""
        raise NotImplementedError

    def check_fill(self, task: TaskLike, fill: object) -> None:
        """Raise a clear error if ``fill`` (a task's value for the pixels a transform brings in
        from outside the image; None: ``hole_value``) does not fit the kind."""
        if fill is not None:
            raise ValueError(
                f"task {task.name!r}: fill is {fill!r}, but a {self.name} task has no label per "
                "pixel to fill; expected None"
            )

    def transform_values(self, labels: torch.Tensor, linear: torch.Tensor) -> torch.Tensor:
        """The labels' values after the image went through the linear map ``linear``.

        ``labels``: a batch in the kind's layout (``label_layout``), already resampled with
        the image (moved); ``linear``: float B x 2 x 2, the map L that the transform applies to
        pixel coordinates about the image centre (output = L @ input, x right, y down): a
        horizontal flip is diag(-1, 1), a zoom by s is s * I. Holes stay holes. Only kinds
        with ``has_value_transform``.
        """
        raise NotImplementedError(
            f"a {self.name} task's labels have no value transform (has_value_transform is False)"
        )

    def check_effects(self, task: TaskLike, effects: Mapping[str, LabelEffect]) -> None:
        """Refuse effects this kind cannot carry out (no classes to permute, no mixed loss)."""
        for transform, effect in effects.items():
            if effect is LabelEffect.PERMUTES and not self.has_classes:
                raise ValueError(
                    f"task {task.name!r}: a {self.name} task has no classes, so {transform} "
                    "cannot permute them; expected another effect than 'permutes'"
                )
            if effect is LabelEffect.MIXES and not self.mixed_loss:
                raise ValueError(
                    f"task {task.name!r}: a {self.name} task's labels cannot be mixed (a blend "
                    f"of two images is not the blend of their labels), so {transform} cannot "
                    "declare 'mixes'; expected 'breaks', or 'moves' for a pasted region"
                )
            if effect is LabelEffect.TRANSFORMS and not self.has_value_transform:
                raise ValueError(
                    f"task {task.name!r}: a {self.name} task's label values have no transform, "
                    f"so {transform} cannot declare 'transforms'; expected 'moves', 'keeps' or "
                    "'breaks'"
                )
            if effect is LabelEffect.TRANSFORMS and transform not in VALUE_KINDS:
                raise ValueError(
                    f"task {task.name!r}: a transform of kind {transform!r} cannot transform "
                    f"label values; 'transforms' is for the kinds {VALUE_KINDS}"
                )

    def out_channels(self, task: TaskLike) -> int:
        """The channels of the task's head output (dim 1)."""
        raise NotImplementedError

    def label_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        """The labels' shape for a batch of ``batch`` images of ``height`` x ``width``."""
        raise NotImplementedError

    def check_labels(self, task: TaskLike, output: torch.Tensor, labels: torch.Tensor) -> None:
        """Raise a clear error, naming the task, if ``labels`` do not fit it and ``output``."""
        raise NotImplementedError

    def loss(
        self,
        task: TaskLike,
        output: torch.Tensor,
        labels: torch.Tensor,
        mix: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The task's mean loss over samples (and valid pixels): a scalar tensor."""
        raise NotImplementedError


class ClassKind(TaskKind):
    """A kind whose labels are class indices: cross-entropy and a confusion matrix."""

    label_dtype = torch.int64
    has_classes = True
    mixed_loss = True
    meter_class = ConfusionMeter
    output_layout: ClassVar[str]  # "B x C" ...

    def check_task(self, task: TaskLike) -> None:
        k = task.num_classes
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            need = (f" (a {self.name} task needs its number of classes)" if k is None else "")
            raise ValueError(f"task {task.name!r}: num_classes is {k!r}, expected an int >= 2"
                             + need)
        if task.class_names and len(task.class_names) != k:
            raise ValueError(
                f"task {task.name!r}: {len(task.class_names)} class names for {k} classes"
            )

    def out_channels(self, task: TaskLike) -> int:
        return int(task.num_classes)

    def check_fill(self, task: TaskLike, fill: object) -> None:
        """A dense class kind fills with a class index or ``ignore_index``."""
        if fill is None or not self.dense:
            super().check_fill(task, fill)
            return
        k = int(task.num_classes)
        ok = (isinstance(fill, int) and not isinstance(fill, bool)
              and (0 <= fill < k or fill == self.ignore_index))
        if not ok:
            ignore = "" if self.ignore_index is None else f" or {self.ignore_index} (IGNORE_INDEX)"
            raise ValueError(
                f"task {task.name!r}: fill is {fill!r}, expected a class index in [0, {k - 1}]"
                f"{ignore}, or None for {self.hole_value}"
            )

    def check_labels(self, task: TaskLike, output: torch.Tensor, labels: torch.Tensor) -> None:
        """Output ``output_layout`` with C = ``num_classes``; labels integer class indices of
        the output's shape without C, in ``[0, num_classes)`` (or ``ignore_index``)."""
        if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise TypeError(
                f"task {task.name!r}: labels have dtype {labels.dtype}, expected integer class "
                "indices"
            )
        ndim = len(self.label_shape(1, 1, 1)) + 1  # the labels' layout and C
        if output.ndim != ndim or output.shape[1] != task.num_classes:
            raise ValueError(
                f"task {task.name!r}: the output has shape {tuple(output.shape)}, expected "
                f"{self.output_layout} with C = {task.num_classes} classes (a {self.name} head)"
            )
        expected = (output.shape[0],) + tuple(output.shape[2:])
        if tuple(labels.shape) != expected:
            raise ValueError(
                f"task {task.name!r}: labels have shape {tuple(labels.shape)}, expected "
                f"{expected} to match the output {tuple(output.shape)}"
            )
        if labels.numel():
            lo, hi = int(labels.min()), int(labels.max())
            lowest = 0 if self.ignore_index is None else min(0, self.ignore_index)
            if lo < lowest or hi >= task.num_classes:
                ignore = ("" if self.ignore_index is None else
                          f", or {self.ignore_index} (IGNORE_INDEX) for a pixel without a label")
                raise ValueError(
                    f"task {task.name!r}: labels range over [{lo}, {hi}], expected classes in "
                    f"[0, {task.num_classes - 1}]{ignore}"
                )

    def loss(
        self,
        task: TaskLike,
        output: torch.Tensor,
        labels: torch.Tensor,
        mix: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Mean cross-entropy (over samples, and labelled pixels for a dense kind).

        With ``mix = (lam, perm)`` (float B, int64 B; from MixUp or CutMix, see
        ``mtlaug_lib.augment.mixing``) each sample's loss is ``lam * CE(labels) + (1 - lam) *
        CE(labels[perm])``, per pixel for segmentation with the sample's ``lam``; then the mean
        (over pixels weighted by the labelled share, where some are ``IGNORE_INDEX``). A batch
        without any labelled pixel gives 0, with a zero gradient, not NaN.
        """
        labels = labels.long()
        ignore = self.ignore_index
        # One host sync, as check_labels' range check: is any label ignored?
        holes = ignore is not None and bool((labels == ignore).any())
        if holes and not bool((labels != ignore).any()):
            return output.sum() * 0.0  # nothing labelled: 0, not cross_entropy's 0 / 0
        kwargs = {} if ignore is None else {"ignore_index": ignore}
        if mix is None:
            return F.cross_entropy(output, labels, **kwargs)
        lam, perm = mix
        if lam.shape != (len(labels),) or perm.shape != (len(labels),):
            raise ValueError(
                f"task {task.name!r}: argument 'mix' holds lam {tuple(lam.shape)} and perm "
                f"{tuple(perm.shape)}, expected both of shape ({len(labels)},), one per sample"
            )
        own = F.cross_entropy(output, labels, reduction="none", **kwargs)  # B (x H x W)
        partner = F.cross_entropy(output, labels[perm], reduction="none", **kwargs)
        lam = lam.to(own.dtype).view(-1, *[1] * (own.ndim - 1))  # broadcast over pixels
        mixed = lam * own + (1 - lam) * partner  # an ignored label adds 0 here...
        if not holes:
            return mixed.mean()
        # ... and its share of the pixel's weight leaves the denominator.
        weight = lam * (labels != ignore) + (1 - lam) * (labels[perm] != ignore)
        return mixed.sum() / weight.sum().clamp_min(torch.finfo(weight.dtype).tiny)

    def confusion_metrics(self, confusion: torch.Tensor) -> dict[str, float]:
        """The kind's metrics from a labels x predictions confusion matrix."""
        raise NotImplementedError


class ClassificationKind(ClassKind):
    """One class per image: output B x C logits, labels int64 B."""

    name = "classification"
    label_layout = "int64 B"
    output_layout = "B x C"
    dense = False
    primary_metric = "accuracy"
    metrics = ("accuracy",)
    higher_is_better = {"loss": False, "accuracy": True}
    default_effects = {
        "photometric": LabelEffect.KEEPS,
        "geometric": LabelEffect.KEEPS,  # small rotations, shifts and scales keep a class
        "horizontal_flip": LabelEffect.KEEPS,
        "vertical_flip": LabelEffect.KEEPS,
        "occlusion": LabelEffect.KEEPS,  # Cutout: a partly hidden object keeps its class
        "mixing": LabelEffect.MIXES,
        "region_mixing": LabelEffect.MIXES,  # by the area fraction of each image
    }

    def label_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        return (batch,)

    def confusion_metrics(self, confusion: torch.Tensor) -> dict[str, float]:
        c = confusion.double()
        total = float(c.sum())
        return {"accuracy": float(c.diag().sum()) / total if total else math.nan}


class SegmentationKind(ClassKind):
    """One class per pixel: output B x C x H x W logits, labels int64 B x H x W, where
    ``IGNORE_INDEX`` (-1) marks a pixel without a label (left out of loss and metrics)."""

    name = "segmentation"
    label_layout = "int64 B x H x W (IGNORE_INDEX = -1: no label)"
    output_layout = "B x C x H x W"
    dense = True
    hole_value = IGNORE_INDEX
    ignore_index = IGNORE_INDEX
    primary_metric = "miou"
    metrics = ("miou", "pixel_accuracy")
    higher_is_better = {"loss": False, "miou": True, "pixel_accuracy": True}
    default_effects = {
        "photometric": LabelEffect.KEEPS,
        "geometric": LabelEffect.MOVES,
        "horizontal_flip": LabelEffect.MOVES,
        "vertical_flip": LabelEffect.MOVES,
        "occlusion": LabelEffect.BREAKS,  # erased pixels keep their labels in the mask
        "mixing": LabelEffect.MIXES,  # a per-pixel mixed loss
        "region_mixing": LabelEffect.MOVES,  # the mask is pasted with the image
    }

    def label_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        return (batch, height, width)

    def confusion_metrics(self, confusion: torch.Tensor) -> dict[str, float]:
        c = confusion.double()
        total = float(c.sum())
        union = c.sum(0) + c.sum(1) - c.diag()
        present = union > 0  # a class absent from labels and predictions does not count
        iou = c.diag()[present] / union[present]
        return {"miou": float(iou.mean()) if present.any() else math.nan,
                "pixel_accuracy": float(c.diag().sum()) / total if total else math.nan}


# A geometric transform or a flip moves depth and normals with the image and changes their
# values (a flip negates the normals' x, a zoom divides depth): each kind's
# ``transform_values`` does it, so these transforms are safe for them ("transforms"), unlike a
# flip for MultiDigits' digits.
_REGRESSION_EFFECTS = {
    "photometric": LabelEffect.KEEPS,
    "geometric": LabelEffect.TRANSFORMS,
    "horizontal_flip": LabelEffect.TRANSFORMS,
    "vertical_flip": LabelEffect.TRANSFORMS,
    "occlusion": LabelEffect.BREAKS,  # erased pixels keep their depth and normals in the labels
    "mixing": LabelEffect.BREAKS,  # a blend of two images is not the blend of their labels
    "region_mixing": LabelEffect.MOVES,  # a pasted region carries its own depth and normals
}


class DenseRegressionKind(TaskKind):
    """A kind whose labels are values per pixel (float), with holes where a label is missing.

    Subclasses declare ``channels`` (of output and labels) and ``check_values``, ``valid``,
    ``pixel_loss`` and ``transform_values``; the loss is the mean of ``pixel_loss`` over valid
    pixels.

    How a geometric transform changes the values (the physics; ``transform_values``): for a
    pinhole camera of fixed focal length f, the image warped by the linear map L (about the
    principal point, pixel units) is exactly the image of the scene moved by the linear map
    A = diag(L / s, 1 / s), s = sqrt(|det L|): back-projecting the pixel L u at depth z / s
    gives A X. So depth becomes z / s and a normal n becomes normalise(A^-T n) =
    normalise(L^-T (nx, ny), nz). A zoom by s divides depth by s: an object that looks s times
    bigger is s times closer, keeping its metric size (the usual monocular-depth convention,
    Eigen et al. 2014; keeping depth instead would teach the net that apparent size says
    nothing about distance). A shift of the image (a crop) is a shift of the principal point,
    as every random crop in dense prediction treats it: values unchanged.
    """

    label_dtype = torch.float32
    dense = True
    has_classes = False
    mixed_loss = False
    hole_value = 0.0  # depth 0, normal (0, 0, 0)
    default_effects = _REGRESSION_EFFECTS
    has_value_transform = True
    channels: ClassVar[int]

    def check_fill(self, task: TaskLike, fill: object) -> None:
        """Out-of-view pixels have no depth or normal: only the hole value (0) fits."""
        if fill is not None and (isinstance(fill, bool) or not isinstance(fill, (int, float))
                                 or fill != self.hole_value):
            raise ValueError(
                f"task {task.name!r}: fill is {fill!r}, expected 0 or None: a pixel brought in "
                f"from outside the image has no {self.name} (a hole, 0)"
            )

    @staticmethod
    def check_linear(labels: torch.Tensor, linear: torch.Tensor) -> torch.Tensor:
        """``linear`` checked: float B x 2 x 2 for B = len(labels), finite, invertible."""
        if (not isinstance(linear, torch.Tensor) or linear.shape != (len(labels), 2, 2)
                or not linear.is_floating_point()):
            got = (f"{linear.dtype} {tuple(linear.shape)}" if isinstance(linear, torch.Tensor)
                   else type(linear).__name__)
            raise ValueError(
                f"argument 'linear' is {got}, expected float B x 2 x 2 with B = {len(labels)}, "
                "the labels' batch"
            )
        det = torch.linalg.det(linear.double())
        if not bool(torch.isfinite(det).all()) or bool((det.abs() < 1e-12).any()):
            raise ValueError(
                "argument 'linear' holds a non-finite or singular map, expected invertible "
                "2 x 2 maps (a transform that collapses the image has no inverse)"
            )
        return linear

    def check_task(self, task: TaskLike) -> None:
        if task.num_classes is not None or task.class_names:
            given = ("num_classes" if task.num_classes is not None else "class_names")
            value = getattr(task, given)
            raise ValueError(
                f"task {task.name!r}: {given} is {value!r}, but a {self.name} task has no "
                "classes; expected it left out"
            )

    def out_channels(self, task: TaskLike) -> int:
        return self.channels

    def check_labels(self, task: TaskLike, output: torch.Tensor, labels: torch.Tensor) -> None:
        """Output B x ``channels`` x H x W; labels floating, ``label_layout``, finite."""
        if not labels.is_floating_point():
            raise TypeError(
                f"task {task.name!r}: labels have dtype {labels.dtype}, expected floating "
                f"point ({self.label_layout})"
            )
        if output.ndim != 4 or output.shape[1] != self.channels:
            raise ValueError(
                f"task {task.name!r}: the output has shape {tuple(output.shape)}, expected "
                f"B x {self.channels} x H x W (a {self.name} head)"
            )
        b, _, h, w = output.shape
        expected = self.label_shape(b, h, w)
        if tuple(labels.shape) != expected:
            raise ValueError(
                f"task {task.name!r}: labels have shape {tuple(labels.shape)}, expected "
                f"{expected} to match the output {tuple(output.shape)}"
            )
        if not bool(torch.isfinite(labels).all()):
            raise ValueError(
                f"task {task.name!r}: labels hold NaN or infinite values, expected finite "
                f"values ({self.label_layout}); a hole is marked by 0, not NaN"
            )
        self.check_values(task, labels)

    def loss(
        self,
        task: TaskLike,
        output: torch.Tensor,
        labels: torch.Tensor,
        mix: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The mean of ``pixel_loss`` over valid pixels. A batch without any valid pixel gives
        0 with a zero gradient (not 0 / 0 = NaN); a hole contributes nothing whatever the output
        there. ``mix`` must be None: these labels cannot be mixed (CutMix moves them with the
        image, so its batches need no mixed loss; MixUp breaks them)."""
        if mix is not None:
            raise ValueError(
                f"task {task.name!r}: argument 'mix' is given, but a {self.name} task's loss "
                "cannot mix labels, expected None (declare 'breaks' or 'moves' for mixing)"
            )
        labels = labels.to(output.dtype)
        valid = self.valid(labels)  # B x H x W
        per_pixel = torch.where(valid, self.pixel_loss(output, labels), 0.0)
        return per_pixel.sum() / valid.sum().clamp_min(1)

    def check_values(self, task: TaskLike, labels: torch.Tensor) -> None:
        raise NotImplementedError

    def valid(self, labels: torch.Tensor) -> torch.Tensor:
        """B x H x W bool: the pixels with a label."""
        raise NotImplementedError

    def pixel_loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """B x H x W loss per pixel (holes included; they are masked out)."""
        raise NotImplementedError


class DepthKind(DenseRegressionKind):
    """Metric depth along the optical axis: output B x 1 x H x W (metres), labels float
    B x H x W, 0 for a hole. Loss: L1 (metres); metrics ``abs_err`` and ``rel_err``."""

    name = "depth"
    label_layout = "float B x H x W metres (0: no depth)"
    channels = 1
    primary_metric = "abs_err"
    metrics = ("abs_err", "rel_err")
    higher_is_better = {"loss": False, "abs_err": False, "rel_err": False}
    meter_class = DepthMeter

    def label_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        return (batch, height, width)

    def check_values(self, task: TaskLike, labels: torch.Tensor) -> None:
        if labels.numel() and float(labels.min()) < 0:
            raise ValueError(
                f"task {task.name!r}: labels hold a depth of {float(labels.min()):g}, expected "
                "depths >= 0 in metres (0 for a hole)"
            )

    def valid(self, labels: torch.Tensor) -> torch.Tensor:
        return labels > 0

    def pixel_loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (output[:, 0] - labels).abs()

    def transform_values(self, labels: torch.Tensor, linear: torch.Tensor) -> torch.Tensor:
        """z' = z / s with s = sqrt(|det L|) (a zoom by s divides depth by s; a flip or a
        rotation leaves it); a hole (0) stays 0. labels B x H x W, linear B x 2 x 2."""
        linear = self.check_linear(labels, linear)
        s = torch.linalg.det(linear.double()).abs().sqrt().to(labels.dtype)
        return labels / s.view(-1, 1, 1)


class NormalsKind(DenseRegressionKind):
    """Unit surface normals in the camera frame: output B x 3 x H x W (any length: normalised
    in loss and metrics), labels float B x 3 x H x W unit vectors, (0, 0, 0) for a hole.
    Loss: 1 - cosine; metrics: angle errors in degrees (``NormalsMeter``). The primary metric is
    the mean angle: the median barely moves when a minority of normals is wrong (such as the
    x component after a flip without its fix)."""

    name = "normals"
    label_layout = "float B x 3 x H x W unit vectors ((0, 0, 0): no normal)"
    channels = 3
    primary_metric = "mean_angle"
    metrics = ("mean_angle", "median_angle", "within_11.25", "within_22.5", "within_30")
    higher_is_better = {"loss": False, "mean_angle": False, "median_angle": False,
                        "within_11.25": True, "within_22.5": True, "within_30": True}
    meter_class = NormalsMeter
    UNIT_TOLERANCE = 0.01  # |n| may differ from 1 by this much (float16 storage: about 1e-3)

    def label_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        return (batch, 3, height, width)

    def check_values(self, task: TaskLike, labels: torch.Tensor) -> None:
        length = torch.linalg.vector_norm(labels.double(), dim=1)[valid_normals(labels)]
        if length.numel():
            worst = float(length[(length - 1).abs().argmax()])
            if abs(worst - 1) > self.UNIT_TOLERANCE:
                raise ValueError(
                    f"task {task.name!r}: labels hold a normal of length {worst:.4g}, expected "
                    f"unit vectors (within {self.UNIT_TOLERANCE}), or (0, 0, 0) for a hole"
                )

    def valid(self, labels: torch.Tensor) -> torch.Tensor:
        return valid_normals(labels)

    def pixel_loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return 1 - (unit(output) * unit(labels)).sum(dim=1)

    def transform_values(self, labels: torch.Tensor, linear: torch.Tensor) -> torch.Tensor:
        """n' = normalise(L^-T (nx, ny), nz): a horizontal flip negates nx, a rotation rotates
        (nx, ny) with the image, a zoom by s gives normalise(nx, ny, s nz); a hole (0, 0, 0)
        stays (0, 0, 0). Each vector keeps its length (1, up to the rounding of float16
        storage, which is left as it is: a flip twice gives back the very same labels).
        labels B x 3 x H x W, linear B x 2 x 2."""
        linear = self.check_linear(labels, linear)
        m = torch.linalg.inv(linear.double()).transpose(1, 2).to(labels.dtype)  # L^-T
        m = m[:, :, :, None, None]  # B x 2 x 2 x 1 x 1, per sample
        x, y, z = labels.unbind(1)
        nx, ny = m[:, 0, 0] * x + m[:, 0, 1] * y, m[:, 1, 0] * x + m[:, 1, 1] * y
        # A hole's zero vector stays zero; a valid one gets its former length back. (Sums of
        # squares channel by channel: a norm over dim 1 is many times slower on a CPU.)
        before = (x * x + y * y + z * z).sqrt()
        after = (nx * nx + ny * ny + z * z).sqrt()
        scale = torch.where(after > 0, before / after.clamp_min(torch.finfo(after.dtype).tiny), 0.0)
        return torch.stack([nx * scale, ny * scale, z * scale], dim=1)


# The registry: a new kind is one class above and one entry here.
TASK_KINDS: dict[str, TaskKind] = {
    kind.name: kind
    for kind in (ClassificationKind(), SegmentationKind(), DepthKind(), NormalsKind())
}
