"""Augmenting a sample or a batch with all its targets, and the label-safety audit.

Three pieces, one idea: an augmentation must do to every task's labels what it does to the
image, and some transforms cannot.

- **The audit.** Every transform has a *kind* (``tasks.TRANSFORM_KINDS``: photometric,
  geometric, horizontal_flip, ...), and every task declares what each kind does to its labels
  (``LabelEffect``: keeps, moves, breaks, mixes). ``audit(pipeline, tasks)`` is the table
  transform x task; ``check_pipeline`` refuses a pipeline that would corrupt a task's labels,
  unless a label map repairs it (a flip that only swaps a task's classes).
- **Samples.** ``SampleTransform`` runs a ``torchvision.transforms.v2`` pipeline on a sample
  dict: the image as ``tv_tensors.Image`` and each mask as ``tv_tensors.Mask`` in one call (so
  one random draw moves both, masks with nearest-neighbour sampling), class labels untouched.
  Use it as ``MultiDigits(transform=...)`` with a ``DataLoader``.
- **Batches.** ``BatchAugment`` augments a whole batch on its device with per-sample random
  parameters (torchvision v2 draws once per call, so a batch passed to it gets one rotation for
  all its images: torchvision issue #8484). Use it as ``train(..., augment=...)``.

MixUp and CutMix, which need the loss to take part, live in ``mtlaug_lib.mixing``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
import torchvision.transforms as v1
from torchvision import tv_tensors
from torchvision.transforms import v2

from .tasks import (
    SEGMENTATION,
    TRANSFORM_KINDS,
    LabelEffect,
    Task,
    multidigits_tasks,
)

IMAGE = "image"  # the batch and sample key of the image
FLIP_KINDS = ("horizontal_flip", "vertical_flip")  # the kinds a label map can repair
BATCH_KINDS = ("mixing", "region_mixing")  # kinds that need a whole batch (a partner image)

LabelMaps = Mapping[str, Mapping[int, int]]  # {task: {old class: new class}}


class LabelSafetyError(ValueError):
    """A pipeline would corrupt a task's labels (raised by ``check_pipeline``)."""


# =============================================================================================
# What a transform is: its kind, and what it can do with masks


@dataclass(frozen=True)
class TransformInfo:
    """What the audit knows about one transform (a leaf of a pipeline).

    Attributes:
        name: the transform's class name (or a part of one of the course's transforms, such
            as ``"BatchAugment.affine"``).
        kind: one of ``tasks.TRANSFORM_KINDS``.
        handles_masks: it applies the right operation to a mask (moves it with the image under
            a geometric transform, leaves it alone under a photometric one). False for
            ``torchvision.transforms`` (v1), which sees the image only, and for transforms
            that pass masks through untouched (``RandomErasing``) or refuse them.
        mixes_losses: it records the mixing coefficients for the loss (the course's MixUp and
            CutMix; not torchvision's, which mix one label tensor only).
        batch_only: it needs a whole batch (MixUp, CutMix, ``BatchAugment``).
        takes_label_maps: a flip that can apply a label map when it fires.
        label_maps: the label maps it applies when it fires, ``{task: {old: new}}``.
        v1: it comes from ``torchvision.transforms`` (v1).
    """

    name: str
    kind: str
    handles_masks: bool
    mixes_losses: bool = False
    batch_only: bool = False
    takes_label_maps: bool = False
    label_maps: Mapping[str, Mapping[int, int]] = field(default_factory=dict)
    v1: bool = False

    def __post_init__(self) -> None:
        if self.kind not in TRANSFORM_KINDS:
            raise ValueError(
                f"transform {self.name}: kind is {self.kind!r}, expected one of {TRANSFORM_KINDS}"
            )


# torchvision's transforms by kind (v2 and, for auditing the seed's code, v1 of the same name).
_TORCHVISION_KINDS = {
    "geometric": (
        "RandomRotation", "RandomAffine", "RandomResizedCrop", "RandomCrop", "Resize",
        "CenterCrop", "RandomPerspective", "ElasticTransform", "Pad", "RandomZoomOut",
        "RandomResize", "ScaleJitter", "RandomShortestSize",
    ),
    "horizontal_flip": ("RandomHorizontalFlip",),
    "vertical_flip": ("RandomVerticalFlip",),
    "photometric": (
        "ColorJitter", "RandomGrayscale", "Grayscale", "GaussianBlur", "GaussianNoise",
        "Normalize", "ToDtype", "ConvertImageDtype", "ToImage", "ToTensor", "PILToTensor",
        "RandomInvert", "RandomPosterize", "RandomSolarize", "RandomAdjustSharpness",
        "RandomAutocontrast", "RandomEqualize", "RandomPhotometricDistort",
        "RandomChannelPermutation", "RGB", "Identity",
    ),
    # RandomErasing changes pixel values only, but the pixels it hides keep their labels in a
    # mask (torchvision passes masks through it), and a large box can hide a whole digit: it
    # gets a kind of its own, so each task can declare what hiding pixels does to its labels.
    "occlusion": ("RandomErasing",),
    "mixing": ("MixUp",),
    "region_mixing": ("CutMix",),
}
# torchvision v2 transforms that do not transform masks (they pass them through or refuse them).
_V2_WITHOUT_MASKS = ("RandomErasing", "MixUp", "CutMix")
_CONTAINERS = ("Compose", "RandomApply", "RandomChoice", "RandomOrder")

# class -> (kind, handles_masks, v1); filled from the table above and by ``declare_kind``.
_REGISTRY: dict[type, tuple[str, bool, bool]] = {}
_CONTAINER_TYPES: tuple[type, ...] = tuple(
    getattr(module, name) for module in (v2, v1) for name in _CONTAINERS
)
for _kind, _names in _TORCHVISION_KINDS.items():
    for _name in _names:
        if hasattr(v2, _name):
            _REGISTRY[getattr(v2, _name)] = (_kind, _name not in _V2_WITHOUT_MASKS, False)
        if hasattr(v1, _name) and getattr(v1, _name) not in _REGISTRY:
            _REGISTRY[getattr(v1, _name)] = (_kind, False, True)

_DECLARED = "_mtlaug_kind"  # the attribute ``declare_kind`` sets on an instance


def _check_kind(kind: object) -> str:
    if kind not in TRANSFORM_KINDS:
        raise ValueError(f"argument 'kind' is {kind!r}, expected one of {TRANSFORM_KINDS}")
    return kind  # type: ignore[return-value]


def declare_kind(transform: Any, kind: str, *, handles_masks: bool = False) -> Any:
    """Tell the audit the kind of a custom transform (a class, or one instance); return it.

    The audit never assumes that a transform it does not know is safe; this is how a user
    vouches for one. ``handles_masks=True`` says that it also transforms ``tv_tensors.Mask``
    inputs correctly (moves them with a geometric change); without it, a geometric transform
    is refused for a segmentation task, since the mask would stay behind.

    Example: ``declare_kind(v2.Lambda(lambda x: x * 0.9, tv_tensors.Image), "photometric")``.
    """
    _check_kind(kind)
    if isinstance(transform, type):
        _REGISTRY[transform] = (kind, bool(handles_masks), False)
        return transform
    if not callable(transform):
        raise TypeError(
            f"argument 'transform' is a {type(transform).__name__}, expected a transform (a "
            "callable) or a transform class"
        )
    try:
        setattr(transform, _DECLARED, (kind, bool(handles_masks)))
    except AttributeError as err:
        raise TypeError(
            f"cannot record a kind on this {type(transform).__name__}; declare its class instead"
        ) from err
    return transform


def _describe(transform: Any) -> TransformInfo:
    """The audit's view of one transform that is not a container."""
    name = type(transform).__name__
    declared = getattr(transform, _DECLARED, None)
    if declared is not None:
        kind, handles = declared
        name = getattr(transform, "__name__", name)
        return TransformInfo(name, kind, handles_masks=handles, batch_only=kind in BATCH_KINDS)
    for cls in type(transform).__mro__:
        if cls in _REGISTRY:
            kind, handles, is_v1 = _REGISTRY[cls]
            return TransformInfo(
                name, kind, handles_masks=handles, v1=is_v1, batch_only=kind in BATCH_KINDS,
                # check_pipeline can swap these for RandomFlip, which applies label maps
                takes_label_maps=cls in (v2.RandomHorizontalFlip, v2.RandomVerticalFlip),
            )
    raise TypeError(
        f"unknown transform {name} ({type(transform).__module__}): the audit does not know what "
        "it does to labels and does not assume that it is safe. Declare its kind with "
        f"mtlaug_lib.augment.declare_kind(transform, kind), kind one of {TRANSFORM_KINDS}"
    )


def _children(transform: Any) -> Sequence[Any] | None:
    """The transforms inside a container (v2/v1 Compose, RandomApply, RandomChoice,
    RandomOrder, a list or tuple, a ``SampleTransform``), else None."""
    if isinstance(transform, (list, tuple)):
        return transform
    if isinstance(transform, _CONTAINER_TYPES):
        return list(transform.transforms)
    if isinstance(transform, SampleTransform):
        return [transform.transform]
    return None


def _walk(transform: Any, path: str = "") -> Iterator[tuple[str, TransformInfo]]:
    """Every leaf of a pipeline in order: ``(name with its place, info)``."""
    children = _children(transform)
    if children is not None:
        single = isinstance(transform, SampleTransform)
        for i, child in enumerate(children):
            yield from _walk(child, path if single else f"{path}[{i}]")
        return
    parts = getattr(transform, "audit_parts", None)
    infos = parts() if callable(parts) else [_describe(transform)]
    for info in infos:
        yield (f"{path} {info.name}" if path else info.name), info


def transform_kinds(pipeline: Any) -> list[tuple[str, str]]:
    """The kind of every transform in ``pipeline``, in order: ``[(name, kind), ...]``.

    Looks inside ``v2.Compose``, ``RandomApply``, ``RandomChoice``, ``RandomOrder`` (and their
    v1 namesakes, lists and tuples), and into the course's own transforms (``BatchAugment``
    lists its parts). A name carries the transform's place, such as ``"[2][0] RandomRotation"``.
    An unknown transform is an error (see ``declare_kind``).
    """
    return [(name, info.kind) for name, info in _walk(pipeline)]


# =============================================================================================
# The audit


@dataclass(frozen=True)
class AuditRow:
    """One cell of the audit: what ``transform`` does to the labels of ``task``.

    ``allowed`` says whether the pipeline may run with it; ``reason`` says why in one sentence;
    ``label_map`` is the map that repairs a broken task when the transform fires (or None).
    """

    transform: str
    kind: str
    task: str
    effect: LabelEffect
    allowed: bool
    reason: str
    label_map: dict[int, int] | None = None

    def cell(self) -> str:
        """The table cell: the effect, a repairing map, and a mark for allowed or refused."""
        text = self.effect.value
        if self.label_map is not None:
            text += f", mapped {self.label_map}"
        return f"{text} {'✓' if self.allowed else '✗'}"


class Audit(Sequence[AuditRow]):
    """The audit's table, transform x task; a sequence of ``AuditRow``.

    ``ok`` is True when every cell is allowed; ``problems()`` lists the refused ones; ``str``
    shows the grid (one line per transform, one column per task) and the reasons for refusals;
    ``to_records()`` gives plain dicts (for ``pandas.DataFrame``).
    """

    def __init__(self, rows: Sequence[AuditRow], tasks: Sequence[str]) -> None:
        self.rows = list(rows)
        self.tasks = list(tasks)

    def __getitem__(self, i):  # type: ignore[override]
        return self.rows[i]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def ok(self) -> bool:
        return all(row.allowed for row in self.rows)

    def problems(self) -> list[AuditRow]:
        return [row for row in self.rows if not row.allowed]

    def grid(self) -> dict[str, dict[str, AuditRow]]:
        """``{transform: {task: row}}`` in pipeline order."""
        out: dict[str, dict[str, AuditRow]] = {}
        for row in self.rows:
            out.setdefault(row.transform, {})[row.task] = row
        return out

    def to_records(self) -> list[dict[str, Any]]:
        return [
            {"transform": r.transform, "kind": r.kind, "task": r.task, "effect": r.effect.value,
             "allowed": r.allowed, "label_map": r.label_map, "reason": r.reason}
            for r in self.rows
        ]

    def __str__(self) -> str:
        grid = self.grid()
        header = ["transform", "kind", *self.tasks]
        lines = [
            [name, next(iter(cells.values())).kind, *(cells[t].cell() for t in self.tasks)]
            for name, cells in grid.items()
        ]
        widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
        text = [
            "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *lines]
        ]
        if not grid:
            text.append("(no transforms)")
        for row in self.problems():
            text.append(f"✗ {row.transform} x {row.task}: {row.reason}")
        return "\n".join(text)

    __repr__ = __str__


def _check_tasks(tasks: Mapping[str, Task]) -> dict[str, Task]:
    if not isinstance(tasks, Mapping) or not tasks:
        raise TypeError(
            f"argument 'tasks' is {tasks!r}, expected a non-empty dict of Task by name "
            "(such as multidigits_tasks())"
        )
    for name, task in tasks.items():
        if not isinstance(task, Task):
            raise TypeError(f"argument 'tasks': entry {name!r} is a {type(task).__name__}, "
                            "expected a Task")
    return dict(tasks)


def _check_label_maps(
    label_maps: LabelMaps | None, tasks: Mapping[str, Task], argument: str = "label_maps"
) -> dict[str, dict[int, int]]:
    """``{task: {old: new}}`` with known tasks and classes in range, as plain dicts."""
    if label_maps is None:
        return {}
    if not isinstance(label_maps, Mapping):
        raise TypeError(
            f"argument {argument!r} is a {type(label_maps).__name__}, expected a dict "
            "{task: {old class: new class}}, such as {'mask': {1: 2, 2: 1}}"
        )
    out: dict[str, dict[int, int]] = {}
    for name, mapping in label_maps.items():
        if name not in tasks:
            raise ValueError(
                f"argument {argument!r} names task {name!r}, expected one of {tuple(tasks)}"
            )
        if not isinstance(mapping, Mapping) or not mapping:
            raise TypeError(
                f"argument {argument!r}: the map of task {name!r} is {mapping!r}, expected a "
                "non-empty dict {old class: new class}"
            )
        k = tasks[name].num_classes
        clean = {}
        for old, new in mapping.items():
            for value in (old, new):
                if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < k:
                    raise ValueError(
                        f"argument {argument!r}: the map of task {name!r} holds {value!r}, "
                        f"expected classes in [0, {k - 1}]"
                    )
            clean[int(old)] = int(new)
        out[name] = clean
    return out


def _judge(
    name: str, info: TransformInfo, task: Task, maps: Mapping[str, dict[int, int]]
) -> AuditRow:
    """One cell of the audit; ``maps`` are the label maps given to ``audit``."""
    effect = task.augmentation[info.kind]
    own = info.label_maps.get(task.name)
    row = {"transform": name, "kind": info.kind, "task": task.name, "effect": effect}
    if own is not None and effect is not LabelEffect.BREAKS:
        # The transform applies its map whenever it fires: on labels that are right, a map
        # would make them wrong.
        return AuditRow(**row, allowed=False, label_map=dict(own), reason=(
            f"it carries the label map {dict(own)} for task {task.name!r}, but the task declares "
            f"that a transform of kind {info.kind!r} {effect.value} its labels, so the map would "
            "corrupt them"))
    if effect is LabelEffect.KEEPS:
        return AuditRow(**row, allowed=True, reason="the labels stay right as they are")
    if effect is LabelEffect.MOVES:
        if task.kind != SEGMENTATION:
            return AuditRow(**row, allowed=False, reason=(
                f"the task declares that its labels move under a transform of kind "
                f"{info.kind!r}, but only a mask can move with the image; declare 'keeps' or "
                "'breaks' for this kind"))
        if info.handles_masks:
            return AuditRow(**row, allowed=True, reason="the mask moves with the image")
        why = ("torchvision.transforms (v1) transforms the image only; use "
               "torchvision.transforms.v2" if info.v1 else
               f"{info.name} does not transform masks")
        return AuditRow(**row, allowed=False, reason=(
            f"the mask must move with the image, but {why}"))
    if effect is LabelEffect.MIXES:
        if info.mixes_losses:
            return AuditRow(**row, allowed=True, reason=(
                "the loss mixes this task's labels with the same coefficients as the images"))
        return AuditRow(**row, allowed=False, reason=(
            f"the labels must be mixed like the images, but {info.name} does not record the "
            "mixing for every task's loss (torchvision's MixUp/CutMix mix one label tensor "
            "only); use mtlaug_lib.mixing.MixUp or CutMix"))
    # BREAKS
    given = maps.get(task.name) if info.kind in FLIP_KINDS else None
    mapping = own if own is not None else given
    if mapping is not None and (own is not None or info.takes_label_maps):
        return AuditRow(**row, allowed=True, label_map=dict(mapping), reason=(
            f"repaired: the label map {dict(mapping)} is applied whenever the flip fires"))
    if mapping is not None:
        return AuditRow(**row, allowed=False, label_map=dict(mapping), reason=(
            f"a label map would repair it, but {info.name} from torchvision.transforms (v1) "
            "cannot apply one; use torchvision.transforms.v2"))
    hint = (f"; if the flip only permutes this task's classes, pass label_maps={{{task.name!r}: "
            "{old: new, ...}}" if info.kind in FLIP_KINDS else "")
    return AuditRow(**row, allowed=False, reason=(
        f"the task declares that a transform of kind {info.kind!r} breaks its labels: remove "
        f"the transform{hint}"))


def audit(pipeline: Any, tasks: Mapping[str, Task], label_maps: LabelMaps | None = None) -> Audit:
    """What each transform of ``pipeline`` does to each task's labels, and whether it may run.

    Args:
        pipeline: a torchvision v2 (or v1) transform or container, a list of transforms, or
            the course's own transforms (``SampleTransform``, ``RandomFlip``,
            ``BatchAugment``, ``MixUp``, ``CutMix``).
        tasks: the tasks, by name; each declares the effect of each kind of transform.
        label_maps: ``{task: {old: new}}``: for a flip that breaks ``task`` only by permuting
            its classes, the map that repairs it (applied when the flip fires; see
            ``check_pipeline``). A map that no flip needs is an error.

    Returns:
        an ``Audit``: one ``AuditRow`` per transform and task.

    A cell is allowed when the effect is ``keeps``; ``moves`` and the transform moves masks
    (a segmentation task); ``mixes`` and the transform records the mixing for the loss;
    ``breaks`` and a label map repairs a flip. An unknown transform is an error.
    """
    tasks = _check_tasks(tasks)
    maps = _check_label_maps(label_maps, tasks)
    rows, needed = [], set()
    for name, info in _walk(pipeline):
        _check_label_maps(info.label_maps, tasks, f"label maps of {name}")
        for task in tasks.values():
            rows.append(_judge(name, info, task, maps))
            if info.kind in FLIP_KINDS and task.augmentation[info.kind] is LabelEffect.BREAKS:
                needed.add(task.name)
    unused = [t for t in maps if t not in needed]
    if unused:
        raise ValueError(
            f"argument 'label_maps' names task(s) {unused}, but no flip in the pipeline breaks "
            "their labels; a label map only repairs a flip that a task declares as breaking"
        )
    return Audit(rows, list(tasks))


def check_pipeline(
    pipeline: Any, tasks: Mapping[str, Task], label_maps: LabelMaps | None = None
) -> Any:
    """Refuse a pipeline that would corrupt a task's labels; return the pipeline to use.

    Raises ``LabelSafetyError`` naming each refused transform, task and reason (see
    ``audit``). Without ``label_maps`` the pipeline is returned as given. With them, the
    returned pipeline applies each map when its flip fires: a torchvision
    ``RandomHorizontalFlip``/``RandomVerticalFlip`` is replaced by ``RandomFlip`` with the same
    probability, and the course's own flips get the maps. Use the returned pipeline.

    Example: ``check_pipeline(v2.RandomHorizontalFlip(), {"mask": tasks["mask"]},
    label_maps={"mask": {1: 2, 2: 1}})`` returns
    ``RandomFlip("horizontal", p=0.5, label_maps={"mask": {1: 2, 2: 1}})``.
    """
    report = audit(pipeline, tasks, label_maps)
    problems = report.problems()
    if problems:
        lines = [f"transform {r.transform} ({r.kind}) x task {r.task!r}: {r.reason}"
                 for r in problems]
        raise LabelSafetyError(
            f"the pipeline would corrupt labels ({len(problems)} problem(s)):\n  "
            + "\n  ".join(lines)
        )
    if not label_maps:
        return pipeline
    return _repair(pipeline, _check_tasks(tasks), _check_label_maps(label_maps, tasks))


def _maps_for(kind: str, tasks: Mapping[str, Task], maps: Mapping[str, dict[int, int]]):
    """The maps of the tasks that a flip of ``kind`` breaks."""
    return {t: m for t, m in maps.items() if tasks[t].augmentation[kind] is LabelEffect.BREAKS}


def _repair(transform: Any, tasks: Mapping[str, Task], maps: Mapping[str, dict[int, int]]):
    """``transform`` with every flip that breaks a task in ``maps`` applying that map."""
    children = _children(transform)
    if children is not None:
        new = [_repair(c, tasks, maps) for c in children]
        if all(a is b for a, b in zip(new, children, strict=True)):
            return transform
        if isinstance(transform, (list, tuple)):
            return type(transform)(new)
        if isinstance(transform, SampleTransform):
            out = copy.copy(transform)
            out.transform = new[0]
            return out
        extra = {"p": transform.p} if hasattr(transform, "p") else {}
        return type(transform)(new, **extra)
    if hasattr(transform, "with_label_maps"):
        kinds = [info.kind for _, info in _walk(transform) if info.takes_label_maps]
        wanted = {t: m for kind in kinds for t, m in _maps_for(kind, tasks, maps).items()}
        return transform.with_label_maps(wanted) if wanted else transform
    info = _describe(transform)
    if info.takes_label_maps:
        wanted = _maps_for(info.kind, tasks, maps)
        if wanted:
            direction = "horizontal" if info.kind == "horizontal_flip" else "vertical"
            return RandomFlip(direction, p=transform.p, label_maps=wanted)
    return transform


# =============================================================================================
# Samples: torchvision v2 on a sample dict


def _remap(labels: Any, mapping: Mapping[int, int]) -> Any:
    """``labels`` (an int, a 0-dim tensor or a mask) with each class ``old`` set to ``new``."""
    if isinstance(labels, int):
        return mapping.get(labels, labels)
    plain = labels.as_subclass(torch.Tensor)
    out = plain.clone()
    for old, new in mapping.items():
        out[plain == old] = new  # from the original labels, so {1: 2, 2: 1} swaps
    return tv_tensors.wrap(out, like=labels) if isinstance(labels, tv_tensors.TVTensor) else out


class RandomFlip(v2.Transform):
    """A random flip that applies label maps when it fires: the course's own flip.

    It flips every ``tv_tensor`` in the input (with torchvision's kernels) with probability
    ``p``, one draw per call like torchvision; when it fires it also maps the labels of each
    task in ``label_maps`` (on a sample dict, by key): ``{"mask": {1: 2, 2: 1}}`` swaps a mask's
    classes 1 and 2. This is how a flip that only permutes a task's classes becomes safe.

    Args:
        direction: ``"horizontal"`` or ``"vertical"``.
        p: the probability of flipping.
        label_maps: ``{task: {old class: new class}}``, applied when the flip fires.
    """

    def __init__(
        self, direction: str = "horizontal", p: float = 0.5, label_maps: LabelMaps | None = None
    ) -> None:
        super().__init__()
        if direction not in ("horizontal", "vertical"):
            raise ValueError(
                f"argument 'direction' is {direction!r}, expected 'horizontal' or 'vertical'"
            )
        self.direction = direction
        self.p = _check_probability("p", p)
        self.label_maps = _plain_maps(label_maps)
        flip = v2.RandomHorizontalFlip if direction == "horizontal" else v2.RandomVerticalFlip
        self._flip = flip(p=1.0)

    @property
    def kind(self) -> str:
        return f"{self.direction}_flip"

    def audit_parts(self) -> list[TransformInfo]:
        return [TransformInfo(f"RandomFlip({self.direction})", self.kind, handles_masks=True,
                              takes_label_maps=True, label_maps=self.label_maps)]

    def with_label_maps(self, label_maps: LabelMaps) -> RandomFlip:
        """A copy that also applies ``label_maps`` (a different map for a task is an error)."""
        return RandomFlip(self.direction, self.p, _merge_maps(self.label_maps, label_maps,
                                                              type(self).__name__))

    def forward(self, *inputs: Any) -> Any:
        sample = inputs[0] if len(inputs) == 1 else inputs
        if torch.rand(1) >= self.p:  # torchvision's draw, so DataLoader workers' seeds apply
            return sample
        if self.label_maps and not isinstance(sample, Mapping):
            raise TypeError(
                f"RandomFlip with label_maps needs a sample dict keyed by task names, got a "
                f"{type(sample).__name__}; wrap the pipeline in SampleTransform"
            )
        out = self._flip(sample)
        for task, mapping in self.label_maps.items():
            if task in out:
                out[task] = _remap(out[task], mapping)
        return out

    def extra_repr(self) -> str:
        return f"direction={self.direction!r}, p={self.p}, label_maps={self.label_maps}"

    def __repr__(self) -> str:  # one line: the inner flip is an implementation detail
        return f"RandomFlip({self.extra_repr()})"


def _plain_maps(label_maps: LabelMaps | None) -> dict[str, dict[int, int]]:
    """Label maps as plain dicts of ints (range checks need the tasks: see ``audit``)."""
    if label_maps is None:
        return {}
    if not isinstance(label_maps, Mapping) or not all(
        isinstance(m, Mapping) for m in label_maps.values()
    ):
        raise TypeError(
            f"argument 'label_maps' is {label_maps!r}, expected a dict {{task: {{old: new}}}}, "
            "such as {'mask': {1: 2, 2: 1}}"
        )
    return {str(t): {int(a): int(b) for a, b in m.items()} for t, m in label_maps.items()}


def _merge_maps(own: LabelMaps, more: LabelMaps, who: str) -> dict[str, dict[int, int]]:
    merged = _plain_maps(own)
    for task, mapping in _plain_maps(more).items():
        if task in merged and merged[task] != mapping:
            raise ValueError(
                f"{who} already maps task {task!r} with {merged[task]}; argument 'label_maps' "
                f"gives {mapping}"
            )
        merged[task] = mapping
    return merged


def _check_probability(name: str, p: object) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"argument {name!r} is {p!r}, expected a probability in [0, 1]")
    return float(p)


def _is_int_tensor(x: torch.Tensor) -> bool:
    return not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool


class SampleTransform:
    """A torchvision v2 transform applied to a sample dict: image and masks in one call.

    ``sample["image"]`` (float or uint8, C x H x W) goes in as ``tv_tensors.Image`` and each
    segmentation task's mask (integer, H x W) as ``tv_tensors.Mask``, so one random draw moves
    both and torchvision resamples masks with nearest neighbours (give per-type fills as a dict,
    ``fill={tv_tensors.Image: 0, tv_tensors.Mask: 0}``). Class labels (0-dim integer tensors or
    ints) pass through untouched, unless a label map of a flip applies. Plain tensors come back.

    The pipeline is audited against ``tasks`` when built (``check_pipeline``), so a transform
    that would corrupt a task's labels is refused. Anything the transform cannot handle is an
    error, never passed through untransformed: a key that is neither ``"image"`` nor a task, a
    value of an unexpected type, a mask whose size differs from the image's (before or after),
    a torchvision v1 transform (it sees the image only), a batch transform.

    Args:
        transform: a torchvision v2 transform or container (``RandomFlip`` included).
        tasks: the tasks whose labels the samples carry (default ``multidigits_tasks()``).
        label_maps: ``{task: {old: new}}`` for flips that only permute a task's classes (see
            ``check_pipeline``).

    Example: ``MultiDigits("train", transform=SampleTransform(v2.RandomRotation(15)))``.
    """

    def __init__(
        self,
        transform: Callable[..., Any],
        tasks: Mapping[str, Task] | None = None,
        label_maps: LabelMaps | None = None,
    ) -> None:
        self.tasks = _check_tasks(multidigits_tasks() if tasks is None else tasks)
        for name, info in _walk(transform):
            if info.v1:
                raise TypeError(
                    f"transform {name} comes from torchvision.transforms (v1), which transforms "
                    "the image only, so a mask would stay behind; use torchvision.transforms.v2"
                )
            if info.batch_only:
                raise TypeError(
                    f"transform {name} works on whole batches; pass it to train(augment=...) "
                    "instead of a per-sample transform"
                )
        self.transform = check_pipeline(transform, self.tasks, label_maps)

    def __repr__(self) -> str:
        return f"SampleTransform({self.transform!r}, tasks={tuple(self.tasks)})"

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """sample: ``{"image": C x H x W, mask task: H x W, class task: 0-dim}`` -> the same
        keys, augmented, as plain tensors."""
        inputs = self._wrap(sample)
        out = self.transform(inputs)
        return self._unwrap(out, inputs)

    def _wrap(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(sample, Mapping):
            raise TypeError(
                f"SampleTransform: the sample is a {type(sample).__name__}, expected a dict "
                "with 'image' and the tasks' labels"
            )
        if IMAGE not in sample:
            raise KeyError(f"SampleTransform: the sample has no {IMAGE!r} (keys: {tuple(sample)})")
        image = sample[IMAGE]
        if not isinstance(image, torch.Tensor) or (
            isinstance(image, tv_tensors.TVTensor) and not isinstance(image, tv_tensors.Image)
        ):
            raise TypeError(
                f"SampleTransform: sample['image'] is a {type(image).__name__}, expected a "
                "tensor (C x H x W, float in [0, 1] or uint8)"
            )
        if image.ndim != 3 or not (image.is_floating_point() or image.dtype == torch.uint8):
            raise ValueError(
                f"SampleTransform: sample['image'] has shape {tuple(image.shape)} and dtype "
                f"{image.dtype}, expected one image C x H x W, float or uint8 (a batch goes to "
                "BatchAugment)"
            )
        size = tuple(image.shape[-2:])
        wrapped: dict[str, Any] = {IMAGE: tv_tensors.Image(image)}
        for key, value in sample.items():
            if key == IMAGE:
                continue
            task = self.tasks.get(key)
            if task is None:
                raise KeyError(
                    f"SampleTransform: the sample holds {key!r}, which is neither 'image' nor "
                    f"one of the tasks {tuple(self.tasks)}; it cannot tell how to transform it "
                    "(and passes nothing through untransformed)"
                )
            if task.kind == SEGMENTATION:
                ok = (isinstance(value, torch.Tensor) and _is_int_tensor(value)
                      and type(value) in (torch.Tensor, tv_tensors.Mask))
                if not ok:
                    raise TypeError(
                        f"SampleTransform: sample[{key!r}] (a segmentation task) is a "
                        f"{_describe_value(value)}, expected an integer tensor H x W (a mask)"
                    )
                if tuple(value.shape) != size:
                    raise ValueError(
                        f"SampleTransform: sample[{key!r}] has shape {tuple(value.shape)}, "
                        f"expected {size}, the image's height and width"
                    )
                wrapped[key] = tv_tensors.Mask(value)
            else:
                ok_int = isinstance(value, int) and not isinstance(value, bool)
                ok_tensor = (type(value) is torch.Tensor and value.ndim == 0
                             and _is_int_tensor(value))
                if not (ok_int or ok_tensor):
                    raise TypeError(
                        f"SampleTransform: sample[{key!r}] (a classification task) is a "
                        f"{_describe_value(value)}, expected a class index (an int or a 0-dim "
                        "integer tensor)"
                    )
                wrapped[key] = value  # a plain tensor: v2 passes it through untouched
        return wrapped

    def _unwrap(self, out: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(out, Mapping) or set(out) != set(inputs):
            got = tuple(out) if isinstance(out, Mapping) else type(out).__name__
            raise TypeError(
                f"SampleTransform: the transform returned {got}, expected a dict with the "
                f"sample's keys {tuple(inputs)}"
            )
        image = out[IMAGE]
        if not isinstance(image, tv_tensors.Image):
            raise TypeError(
                f"SampleTransform: the transform returned the image as a "
                f"{type(image).__name__}, expected a tv_tensors.Image (a transform such as "
                "ToPureTensor or ToPILImage does not belong in the pipeline)"
            )
        size = tuple(image.shape[-2:])
        result: dict[str, Any] = {IMAGE: image.as_subclass(torch.Tensor)}
        for key, value in out.items():
            if key == IMAGE:
                continue
            if self.tasks[key].kind == SEGMENTATION:
                if not isinstance(value, tv_tensors.Mask) or tuple(value.shape) != size:
                    raise ValueError(
                        f"SampleTransform: after the transform, sample[{key!r}] is a "
                        f"{_describe_value(value)}, expected a Mask of the image's size {size}; "
                        "a transform changed the image without the mask"
                    )
                result[key] = value.as_subclass(torch.Tensor)
            else:
                result[key] = value
        return result


def _describe_value(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    return type(value).__name__


# =============================================================================================
# Batches: per-sample random affine and colour jitter on the device


@dataclass(frozen=True)
class AugmentParams:
    """The random parameters of one ``BatchAugment`` call, one row per sample (B samples).

    The affine fields mean what they mean to ``torchvision.transforms.v2.functional.affine``
    (about the image centre; the flip is applied after the affine):

    - ``angle``: float B, degrees, clockwise (as ``v2.functional.affine``);
    - ``translate``: float B x 2, pixels (x to the right, y down);
    - ``scale``: float B;
    - ``shear``: float B x 2, degrees (x, y);
    - ``flip``: bool B, mirrored left-right;
    - ``brightness``, ``contrast``, ``saturation``: float B, factors (1 leaves the image as is);
    - ``channels``: int64 B x C, the order of the colour channels.
    """

    angle: torch.Tensor
    translate: torch.Tensor
    scale: torch.Tensor
    shear: torch.Tensor
    flip: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    channels: torch.Tensor

    def __len__(self) -> int:
        return len(self.angle)

    def to(self, device: torch.device | str) -> AugmentParams:
        return AugmentParams(**{f.name: getattr(self, f.name).to(device, non_blocking=True)
                                for f in fields(self)})

    @classmethod
    def identity(cls, batch_size: int, channels: int = 3) -> AugmentParams:
        """Parameters that leave every sample as it is."""
        b = batch_size
        return cls(angle=torch.zeros(b), translate=torch.zeros(b, 2), scale=torch.ones(b),
                   shear=torch.zeros(b, 2), flip=torch.zeros(b, dtype=torch.bool),
                   brightness=torch.ones(b), contrast=torch.ones(b), saturation=torch.ones(b),
                   channels=torch.arange(channels).repeat(b, 1))


def _range(name: str, value: object, symmetric: bool, low: float | None = None,
           high: float | None = None) -> tuple[float, float]:
    """``(lo, hi)`` from a number (``(-x, x)`` if symmetric) or a pair, within [low, high]."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and symmetric:
        if value < 0:
            raise ValueError(f"argument {name!r} is {value!r}, expected a number >= 0 or a "
                             "pair (lo, hi)")
        lo, hi = -float(value), float(value)
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        lo, hi = float(value[0]), float(value[1])
    else:
        shape = "a number or a pair (lo, hi)" if symmetric else "a pair (lo, hi)"
        raise ValueError(f"argument {name!r} is {value!r}, expected {shape}")
    if lo > hi or (low is not None and lo < low) or (high is not None and hi > high):
        bounds = f" within [{low}, {high}]" if low is not None or high is not None else ""
        raise ValueError(f"argument {name!r} is {value!r}, expected lo <= hi{bounds}")
    return lo, hi


def _fractions(name: str, value: object) -> tuple[float, float]:
    """A pair ``(fx, fy)`` of fractions in [0, 1] (as ``v2.RandomAffine``'s ``translate``)."""
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
                  for v in value))
    if not ok:
        raise ValueError(f"argument {name!r} is {value!r}, expected a pair (fx, fy) of "
                         "fractions in [0, 1]")
    return float(value[0]), float(value[1])  # type: ignore[index]


def _jitter(name: str, value: object) -> tuple[float, float]:
    """A colour-jitter strength s as the factor range [max(0, 1 - s), 1 + s] (as ColorJitter)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"argument {name!r} is {value!r}, expected a number >= 0")
    return max(0.0, 1.0 - value), 1.0 + float(value)


def make_generator(generator: torch.Generator | int | None) -> torch.Generator | None:
    """A CPU generator from a seed, the generator itself, or None (torch's global one)."""
    if generator is None or isinstance(generator, torch.Generator):
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(
                f"argument 'generator' is on {generator.device}, expected a CPU generator "
                "(parameters are drawn on the CPU, so CPU and GPU runs draw the same ones)"
            )
        return generator
    if isinstance(generator, bool) or not isinstance(generator, int) or generator < 0:
        raise TypeError(
            f"argument 'generator' is {generator!r}, expected a torch.Generator, a seed "
            "(int >= 0) or None"
        )
    return torch.Generator().manual_seed(generator)


def affine_theta(params: AugmentParams, height: int, width: int) -> torch.Tensor:
    """The ``F.affine_grid`` matrices (B x 2 x 3) of ``params``' affine and flip.

    The same inverse matrix as torchvision's ``v2.functional.affine`` (centre of the image,
    rotation, scale, shear, translation), mapped from pixel to normalised coordinates, with the
    horizontal flip of the output folded in (one resampling for both).
    """
    rot = torch.deg2rad(params.angle)
    sx, sy = torch.deg2rad(params.shear).unbind(-1)
    # torchvision's rotation-scale-shear matrix RSS = [[a, b], [c, d]] (scale aside), inverted.
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -(a * torch.tan(sx) + torch.sin(rot))
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = torch.cos(rot) - c * torch.tan(sx)
    inv = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
    inv = inv / params.scale[:, None, None]  # B x 2 x 2, output pixel -> input pixel
    shift = -(inv @ params.translate[:, :, None])  # B x 2 x 1
    # Mirroring the output is x -> -x before the inverse map (pixel centres map onto each other).
    sign = 1.0 - 2.0 * params.flip.to(inv.dtype)
    inv = inv * torch.stack([sign, torch.ones_like(sign)], -1)[:, None, :]
    # Pixel coordinates about the centre -> affine_grid's [-1, 1] (align_corners=False).
    to_norm = inv.new_tensor([2.0 / width, 2.0 / height])
    linear = inv * to_norm[:, None] / to_norm[None, :]
    return torch.cat([linear, shift * to_norm[:, None]], dim=2)


_GREY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def _grey(image: torch.Tensor) -> torch.Tensor:
    """B x 3 x H x W -> B x 1 x H x W, as ``v2.functional.rgb_to_grayscale``."""
    r, g, b = image.unbind(1)
    return (r * _GREY[0] + g * _GREY[1] + b * _GREY[2]).unsqueeze(1)


def color_jitter(image: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """Per-sample brightness, contrast and saturation, in that order.

    Each step is torchvision's ``adjust_brightness``/``adjust_contrast``/``adjust_saturation``
    on a float image in [0, 1], with one factor per sample (``params.brightness`` etc., B)
    instead of one per call; torchvision's functions take a single factor.

    image: float B x C x H x W in [0, 1] -> the same shape.
    """
    def view(x: torch.Tensor) -> torch.Tensor:
        return x.to(image.dtype).view(-1, 1, 1, 1)

    x = (image * view(params.brightness)).clamp_(0, 1)
    if image.shape[1] == 3:
        mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
        c = view(params.contrast)
        x = (c * x + (1 - c) * mean).clamp_(0, 1)
        s = view(params.saturation)
        x = (s * x + (1 - s) * _grey(x)).clamp_(0, 1)
    else:  # one channel: contrast only (saturation has no meaning)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        c = view(params.contrast)
        x = (c * x + (1 - c) * mean).clamp_(0, 1)
    return x


def permute_channels(image: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Each sample's channels in its own order. image: B x C x H x W; order: int64 B x C."""
    return image.gather(1, order[:, :, None, None].expand(-1, -1, *image.shape[2:]))


class BatchAugment:
    """Augment a whole batch on its device: a random affine and colour jitter per sample.

    One call draws B sets of parameters (``AugmentParams``) from ``generator`` on the CPU (so
    CPU and GPU runs draw the same numbers), moves them to the batch's device and applies them:
    one ``F.affine_grid`` for the batch, ``F.grid_sample`` bilinear for the image and nearest
    for every mask (zero fill: background), then the colour jitter on the image only. Class
    labels pass through (mapped by ``label_maps`` where the flip fired). Written with torch
    primitives because torchvision's transforms draw one set of parameters per call (the same
    for the whole batch, torchvision #8484) and kornia, which does this, is not a dependency.

    Args:
        tasks: the tasks whose labels the batches carry (default ``multidigits_tasks()``); the
            augmenter is audited against them when built (``check_pipeline``).
        degrees: rotation range in degrees (a number x means (-x, x)).
        translate: maximal shift as fractions of the width and height, ``(fx, fy)``.
        scale: zoom range ``(lo, hi)``.
        shear: x-shear range in degrees (a number x means (-x, x)).
        brightness, contrast, saturation: jitter strengths, as ``v2.ColorJitter``.
        channel_shuffle: probability of permuting a sample's colour channels (digits are tinted,
            so this changes their tint; a cheap stand-in for hue jitter).
        hflip: probability of a horizontal flip (breaks MultiDigits' ``left``/``right``).
        label_maps: ``{task: {old: new}}``, applied to a sample's labels when its flip fires.
        generator: a seed, a CPU ``torch.Generator``, or None for torch's global generator.
        check: audit the augmenter against ``tasks`` when built (``False`` only to show what
            the audit reports about it; running an unchecked augmenter is at your own risk).

    Call: ``aug(batch)`` or ``aug(batch, params)`` to replay ``params`` (``aug.last_params``
    holds the last call's). ``batch``: ``{"image": float B x C x H x W in [0, 1], mask task:
    integer B x H x W, class task: integer B}`` (plus MixUp/CutMix keys, passed through); the
    result has the same keys, shapes and dtypes.
    """

    def __init__(
        self,
        tasks: Mapping[str, Task] | None = None,
        *,
        degrees: float | tuple[float, float] = 0.0,
        translate: tuple[float, float] = (0.0, 0.0),
        scale: tuple[float, float] = (1.0, 1.0),
        shear: float | tuple[float, float] = 0.0,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        channel_shuffle: float = 0.0,
        hflip: float = 0.0,
        label_maps: LabelMaps | None = None,
        generator: torch.Generator | int | None = None,
        check: bool = True,
    ) -> None:
        self.tasks = _check_tasks(multidigits_tasks() if tasks is None else tasks)
        self.degrees = _range("degrees", degrees, symmetric=True)
        self.translate = _fractions("translate", translate)
        self.scale = _range("scale", scale, symmetric=False, low=1e-3)
        self.shear = _range("shear", shear, symmetric=True, low=-80.0, high=80.0)
        self.brightness = _jitter("brightness", brightness)
        self.contrast = _jitter("contrast", contrast)
        self.saturation = _jitter("saturation", saturation)
        self.channel_shuffle = _check_probability("channel_shuffle", channel_shuffle)
        self.hflip = _check_probability("hflip", hflip)
        self.label_maps = _check_label_maps(label_maps, self.tasks)
        self.generator = make_generator(generator)
        self.last_params: AugmentParams | None = None
        self._luts = {t: self._lut(t, m) for t, m in self.label_maps.items()}
        if check:  # refuse, now, an augmenter that would corrupt a task's labels
            check_pipeline(self, self.tasks)

    def _lut(self, task: str, mapping: Mapping[int, int]) -> torch.Tensor:
        lut = torch.arange(self.tasks[task].num_classes)
        for old, new in mapping.items():
            lut[old] = new
        return lut

    @property
    def geometric(self) -> bool:
        return (self.degrees != (0.0, 0.0) or self.translate != (0.0, 0.0)
                or self.scale != (1.0, 1.0) or self.shear != (0.0, 0.0))

    @property
    def photometric(self) -> bool:
        return any(r != (1.0, 1.0) for r in (self.brightness, self.contrast, self.saturation))

    def audit_parts(self) -> list[TransformInfo]:
        """The parts the audit sees (those that are switched on)."""
        parts = []
        if self.geometric:
            parts.append(TransformInfo("BatchAugment.affine", "geometric", handles_masks=True,
                                       batch_only=True))
        if self.hflip:
            parts.append(TransformInfo("BatchAugment.hflip", "horizontal_flip",
                                       handles_masks=True, batch_only=True,
                                       takes_label_maps=True, label_maps=self.label_maps))
        if self.photometric:
            parts.append(TransformInfo("BatchAugment.color_jitter", "photometric",
                                       handles_masks=True, batch_only=True))
        if self.channel_shuffle:
            parts.append(TransformInfo("BatchAugment.channel_shuffle", "photometric",
                                       handles_masks=True, batch_only=True))
        return parts

    def with_label_maps(self, label_maps: LabelMaps) -> BatchAugment:
        """A copy that also applies ``label_maps`` when its flip fires."""
        out = copy.copy(self)
        out.label_maps = _check_label_maps(
            _merge_maps(self.label_maps, label_maps, "BatchAugment"), self.tasks)
        out._luts = {t: out._lut(t, m) for t, m in out.label_maps.items()}
        check_pipeline(out, out.tasks)
        return out

    def __repr__(self) -> str:
        settings = {"degrees": self.degrees, "translate": self.translate, "scale": self.scale,
                    "shear": self.shear, "brightness": self.brightness,
                    "contrast": self.contrast, "saturation": self.saturation,
                    "channel_shuffle": self.channel_shuffle, "hflip": self.hflip,
                    "label_maps": self.label_maps}
        args = ", ".join(f"{k}={v}" for k, v in settings.items())
        return f"BatchAugment(tasks={tuple(self.tasks)}, {args})"

    def sample_params(self, batch_size: int, height: int, width: int,
                      channels: int = 3) -> AugmentParams:
        """Draw one set of parameters per sample, on the CPU, from ``generator``."""
        g, b = self.generator, batch_size
        u = torch.rand(b, 10, generator=g)  # every uniform at once, in a fixed order

        def between(col: int, lo_hi: tuple[float, float]) -> torch.Tensor:
            lo, hi = lo_hi
            return lo + (hi - lo) * u[:, col]

        fx, fy = self.translate
        translate = torch.stack([between(1, (-fx, fx)) * width, between(2, (-fy, fy)) * height], 1)
        shuffle = u[:, 8] < self.channel_shuffle
        order = torch.rand(b, channels, generator=g).argsort(dim=1)
        identity = torch.arange(channels).expand(b, channels)
        return AugmentParams(
            angle=between(0, self.degrees),
            translate=translate,
            scale=between(3, self.scale),
            shear=torch.stack([between(4, self.shear), torch.zeros(b)], 1),
            flip=u[:, 9] < self.hflip,
            brightness=between(5, self.brightness),
            contrast=between(6, self.contrast),
            saturation=between(7, self.saturation),
            channels=torch.where(shuffle[:, None], order, identity),
        )

    def _check_batch(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if not isinstance(batch, Mapping) or IMAGE not in batch:
            got = tuple(batch) if isinstance(batch, Mapping) else type(batch).__name__
            raise KeyError(f"BatchAugment: the batch is {got}, expected a dict with 'image'")
        image = batch[IMAGE]
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or not image.is_floating_point():
            raise ValueError(
                f"BatchAugment: batch['image'] is a {_describe_value(image)}, expected float "
                "B x C x H x W in [0, 1]"
            )
        b, c, h, w = image.shape
        if (self.photometric or self.channel_shuffle) and c not in (1, 3):
            raise ValueError(f"BatchAugment: batch['image'] has {c} channels, expected 1 or 3")
        for key, value in batch.items():
            if key == IMAGE or key.startswith("mix."):  # MixUp/CutMix's keys pass through
                continue
            task = self.tasks.get(key)
            if task is None:
                raise KeyError(
                    f"BatchAugment: the batch holds {key!r}, which is neither 'image' nor one of "
                    f"the tasks {tuple(self.tasks)}; it cannot tell how to transform it"
                )
            want = (b, h, w) if task.kind == SEGMENTATION else (b,)
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != want or not (
                _is_int_tensor(value)
            ):
                layout = "B x H x W (a mask)" if task.kind == SEGMENTATION else "B"
                raise ValueError(
                    f"BatchAugment: batch[{key!r}] is a {_describe_value(value)}, expected "
                    f"integer {layout} = {want} for the image {tuple(image.shape)}"
                )
        return image

    def __call__(
        self, batch: Mapping[str, torch.Tensor], params: AugmentParams | None = None
    ) -> dict[str, torch.Tensor]:
        image = self._check_batch(batch)
        b, c, h, w = image.shape
        if params is None:
            params = self.sample_params(b, h, w, c)
        elif len(params) != b:
            raise ValueError(f"argument 'params' holds {len(params)} samples, the batch {b}")
        self.last_params = params
        p = params.to(image.device)
        out = dict(batch)
        masks = [k for k, t in self.tasks.items() if t.kind == SEGMENTATION and k in batch]
        if self.geometric or self.hflip:
            theta = affine_theta(p, h, w).to(image.dtype)
            grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
            out[IMAGE] = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros",
                                       align_corners=False)
            if masks:
                # All masks in one nearest-neighbour pass: class indices are never blended.
                stacked = torch.stack([batch[k] for k in masks], 1).to(image.dtype)
                moved = F.grid_sample(stacked, grid, mode="nearest", padding_mode="zeros",
                                      align_corners=False)
                for i, k in enumerate(masks):
                    out[k] = moved[:, i].round().to(batch[k].dtype)
        if self.photometric:
            out[IMAGE] = color_jitter(out[IMAGE], p)
        if self.channel_shuffle:
            out[IMAGE] = permute_channels(out[IMAGE], p.channels)
        for key, lut in self._luts.items():
            if key in out:
                labels = out[key]
                fired = p.flip.view(-1, *[1] * (labels.ndim - 1))
                mapped = lut.to(labels.device)[labels.long()].to(labels.dtype)
                out[key] = torch.where(fired, mapped, labels)
        return out


def ink(image: torch.Tensor) -> torch.Tensor:
    """How far each pixel is from its image's background, in [0, 1] of the image's range.

    The background is each channel's most common value (a digit image's background is one flat
    colour, whatever colour jitter, inversion or normalisation did to it); the distance is the
    largest over channels, divided by the image's largest, so which pixels count as ink does
    not depend on the image's scale.

    image: C x H x W or B x C x H x W -> H x W or B x H x W.
    """
    x = (image if image.ndim == 4 else image[None]).float()
    top = x.flatten(1).amax(dim=1) - x.flatten(1).amin(dim=1)
    levels = (x.flatten(2) * (255 / top.clamp_min(1e-12))[:, None, None]).round()
    background = levels.mode(dim=2).values[:, :, None, None] / (255 / top[:, None, None, None])
    dist = (x - background).abs().amax(dim=1)  # B x H x W
    out = dist / dist.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return out if image.ndim == 4 else out[0]


def mask_alignment(
    image: torch.Tensor, mask: torch.Tensor, faint: float = 0.02, strong: float = 0.5
) -> tuple[float, float]:
    """How well a mask fits an image's digit pixels: two fractions, 1.0 meaning perfectly.

    Returns ``(labelled_with_ink, strong_ink_labelled)``: the fraction of the mask's labelled
    pixels (mask > 0) whose ``ink`` is above ``faint``, and the fraction of strong-ink pixels
    (``ink`` above ``strong``) that the mask labels. A mask left behind by a geometric transform,
    or moved differently from the image, scores low on both.

    image: C x H x W or B x C x H x W; mask: H x W or B x H x W (integer).
    """
    level = ink(image)
    labelled = mask > 0
    strong_px = level > strong
    a = float((level[labelled] > faint).float().mean()) if labelled.any() else 1.0
    b = float(labelled[strong_px].float().mean()) if strong_px.any() else 1.0
    return a, b
