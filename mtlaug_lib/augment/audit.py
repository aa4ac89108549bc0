"""The label-safety audit: what each transform of a pipeline does to each task's labels.

An augmentation must do to every task's labels what it does to the image, and some transforms
cannot. Every transform has a *kind* (``tasks.TRANSFORM_KINDS``: photometric, geometric,
horizontal_flip, ...), and every task declares what each kind does to its labels
(``LabelEffect``: keeps, moves, breaks, mixes). ``audit(pipeline, tasks)`` is the table
transform x task; ``check_pipeline`` refuses a pipeline that would corrupt a task's labels,
unless a label map repairs it (a flip that only swaps a task's classes).

This module holds the audit: ``LabelSafetyError``, ``TransformInfo``, ``declare_kind``,
``transform_kinds``, ``AuditRow``, ``Audit``, ``audit``, ``check_pipeline``, the kinds of
torchvision's transforms and the checks of label maps. The transforms it audits live in
``mtlaug_lib.augment.sample`` (samples: ``SampleTransform``, ``RandomFlip``),
``mtlaug_lib.augment.batch`` (batches: ``BatchAugment``) and ``mtlaug_lib.augment.mixing`` (``MixUp``,
``CutMix``); each of them runs ``check_pipeline`` when built.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torchvision.transforms as v1
from torchvision.transforms import v2

from ..core.tasks import (
    CLASSIFICATION,
    FLIP_KINDS,
    SEGMENTATION,
    TRANSFORM_KINDS,
    LabelEffect,
    Task,
)
from .probe import DRAWS, Measurement, Probe, Region, make_probes, measure, torchvision_probe

# The audit looks inside the course's SampleTransform and repairs a torchvision flip with the
# course's RandomFlip; both are transforms, so they live in mtlaug_lib.augment.sample, which builds on
# this module (they call check_pipeline when built). So augment imports audit at load time and
# audit imports those two classes inside the functions that use them (_children, _walk,
# _repair), where both modules are loaded: no import cycle, and the audit stays free of the
# transforms' code (RandomFlip in here would still leave SampleTransform to import lazily).

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
        probe: for a geometric transform, how the audit runs it on probes to measure what it
            does to the data (``mtlaug_lib.augment.probe``); None if it cannot be run that way.
    """

    name: str
    kind: str
    handles_masks: bool
    mixes_losses: bool = False
    batch_only: bool = False
    takes_label_maps: bool = False
    label_maps: Mapping[str, Mapping[int, int]] = field(default_factory=dict)
    v1: bool = False
    probe: Probe | None = field(default=None, compare=False, repr=False)

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
        probe = torchvision_probe(transform) if kind == "geometric" else None
        return TransformInfo(name, kind, handles_masks=handles, batch_only=kind in BATCH_KINDS,
                             probe=probe)
    for cls in type(transform).__mro__:
        if cls in _REGISTRY:
            kind, handles, is_v1 = _REGISTRY[cls]
            return TransformInfo(
                name, kind, handles_masks=handles, v1=is_v1, batch_only=kind in BATCH_KINDS,
                # check_pipeline can swap these for RandomFlip, which applies label maps
                takes_label_maps=cls in (v2.RandomHorizontalFlip, v2.RandomVerticalFlip),
                probe=torchvision_probe(transform) if kind == "geometric" else None,
            )
    raise TypeError(
        f"unknown transform {name} ({type(transform).__module__}): the audit does not know what "
        "it does to labels and does not assume that it is safe. Declare its kind with "
        f"mtlaug_lib.augment.audit.declare_kind(transform, kind), kind one of {TRANSFORM_KINDS}"
    )


def _children(transform: Any) -> Sequence[Any] | None:
    """The transforms inside a container (v2/v1 Compose, RandomApply, RandomChoice,
    RandomOrder, a list or tuple, a ``SampleTransform``), else None."""
    from .sample import SampleTransform  # lazily: augment imports this module

    if isinstance(transform, (list, tuple)):
        return transform
    if isinstance(transform, _CONTAINER_TYPES):
        return list(transform.transforms)
    if isinstance(transform, SampleTransform):
        return [transform.transform]
    return None


def _walk(transform: Any, path: str = "") -> Iterator[tuple[str, TransformInfo]]:
    """Every leaf of a pipeline in order: ``(name with its place, info)``."""
    from .sample import SampleTransform  # lazily: augment imports this module

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
        _check_permutation(clean, name, argument)
        out[name] = clean
    return out


def _check_permutation(mapping: Mapping[int, int], task: str, argument: str) -> None:
    """A label map must exchange classes: a permutation of the classes it names, with no class
    mapped to itself (such an entry repairs nothing, and a map of only such entries would
    switch the audit off while changing no label)."""
    fixed = [old for old, new in mapping.items() if old == new]
    if fixed:
        raise ValueError(
            f"argument {argument!r}: the map of task {task!r} maps class(es) {fixed} to "
            "themselves, which repairs nothing; list only the classes that the flip exchanges, "
            "such as {1: 2, 2: 1}"
        )
    if set(mapping) != set(mapping.values()):
        raise ValueError(
            f"argument {argument!r}: the map of task {task!r} is {dict(mapping)}, which is not a "
            f"permutation (it sends {sorted(mapping)} to {sorted(mapping.values())}); a flip "
            "exchanges classes, so each class must appear once as old and once as new, such as "
            "{1: 2, 2: 1}"
        )


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


# =============================================================================================
# Measuring on the data


@functools.lru_cache(maxsize=1)
def course_data() -> dict[str, torch.Tensor]:
    """The audit's default sample of the data: the first 128 MultiDigits training samples
    (``{"image": float 128 x 3 x 28 x 28, "left", "right": int64 128, "mask": int64 128 x 28 x
    28}``), built once per process."""
    from ..data.multidigits import MultiDigits  # lazily: the audit of other data needs none of it

    data = MultiDigits("train", size=DRAWS)
    return data.batch(torch.arange(len(data)))


def _check_data(data: Mapping[str, torch.Tensor] | None, keys: set[str]) -> dict:
    data = course_data() if data is None else data
    if not isinstance(data, Mapping) or "image" not in data:
        raise TypeError(
            f"argument 'data' is a {type(data).__name__}, expected a batch dict with 'image' "
            "(float N x C x H x W) and the masks the tasks name (integer N x H x W)"
        )
    image = data["image"]
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        raise ValueError(f"argument 'data': 'image' has shape {tuple(getattr(image, 'shape', ()))}"
                         ", expected N x C x H x W")
    want = (len(image), *image.shape[2:])
    for key in sorted(keys):
        mask = data.get(key)
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != want:
            raise ValueError(
                f"argument 'data' has no mask {key!r} of shape {want}, "
                "which a task names (its region or its own labels); pass data that carries it"
            )
    return dict(data)


@dataclass
class _Measured:
    """What the audit measured of one geometric transform (or why it could not)."""

    measurement: Measurement | None = None
    error: str = ""
    sizes_in: tuple[tuple[int, int], ...] = ()
    sizes_out: tuple[tuple[int, int], ...] = ()
    last_resize: bool = False  # the last transform that changes the pipeline's output size


def _measure_all(
    leaves: Sequence[tuple[str, TransformInfo]], data: Mapping[str, torch.Tensor],
    regions: Sequence[Region], seed: int,
) -> dict[str, _Measured]:
    """Measure every geometric leaf on probes of ``data``; track the image size through them."""
    masks = {key: data[key] for key, _ in regions}
    probes = make_probes(masks or {"_": data["image"][:, 0].long()}, regions, DRAWS)
    size = {tuple(data["image"].shape[2:])}
    out: dict[str, _Measured] = {}
    for name, info in leaves:
        if info.kind != "geometric":
            continue
        result = _Measured(sizes_in=tuple(size))
        if info.probe is None:
            result.error = "the audit cannot run it to measure what it does"
        else:
            try:
                result.measurement = measure(info.probe, probes, regions, seed)
                if size == {tuple(probes.shape[2:])}:  # images of the data's size reach it:
                    size = set(result.measurement.sizes)  # every size its draws gave
                else:  # an earlier transform resized them: run it once at that size
                    first = torch.zeros(1, len(probes[0]), *sorted(size)[0])
                    size = {tuple(o.shape[1:]) for o in info.probe(first, seed)}
            except Exception as err:  # a transform that cannot run on probes is not vouched for
                result.error = (f"the audit could not run it on the data "
                                f"({type(err).__name__}: {err})")
        result.sizes_out = tuple(sorted(size))
        out[name] = result
    resizing = [n for n, m in out.items() if set(m.sizes_out) != set(m.sizes_in)]
    if resizing:
        out[resizing[-1]].last_resize = True
    return out


def _region_name(region: Region, tasks: Mapping[str, Task]) -> str:
    key, cls = region
    owner = tasks.get(key)
    names = owner.class_names if owner is not None else ()
    label = f" ({names[cls]})" if 0 <= cls < len(names) else ""
    return f"object {key} == {cls}{label}"


def _sizes(sizes: Sequence[tuple[int, int]]) -> str:
    return ", ".join(f"{h} x {w}" for h, w in sizes)


def _measured_problems(task: Task, measured: _Measured | None, tasks: Mapping[str, Task]
                       ) -> tuple[list[str], str]:
    """What a measured geometric transform breaks for ``task``, and a summary of what it does."""
    if measured is None:
        return [], ""
    problems, facts = [], []
    if measured.last_resize and task.input_size is not None:
        final = measured.sizes_out
        if final != (task.input_size,):
            problems.append(
                f"it outputs {_sizes(final)} images, and the task takes "
                f"{_sizes([task.input_size])}")
    limits = task.region is not None or task.max_rotation is not None
    if task.kind != CLASSIFICATION or not limits:
        return problems, ""
    if measured.error:
        return [*problems, measured.error], ""
    m = measured.measurement
    assert m is not None
    if task.max_rotation is not None:
        worst = float(m.angle.nan_to_num(0.0).max())
        facts.append(f"rotation up to {worst:.1f}°")
        if worst > task.max_rotation + ROTATION_SLACK:
            problems.append(
                f"it rotates by up to {worst:.1f}° (measured over {m.draws} draws), past the "
                f"±{task.max_rotation:g}° under which the task declares its labels stay right")
    if task.region is not None:
        fraction = m.visible[task.region]
        short = float((fraction < task.min_visible).float().mean())
        what = _region_name(task.region, tasks)
        facts.append(f"at least {task.min_visible:.0%} of the {what} in view in "
                     f"{1 - short:.0%} of draws")
        if short > MAX_SHORT:
            problems.append(
                f"in {short:.0%} of {m.draws} draws on the data less than "
                f"{task.min_visible:.0%} of the {what} stays in view (worst draw: "
                f"{float(fraction.min()):.0%}), so its label describes a digit that is not "
                "there")
    return problems, f"measured over {m.draws} draws: " + ", ".join(facts)


MAX_SHORT = 0.01  # the fraction of draws allowed to leave too little of an object in view
ROTATION_SLACK = 0.5  # degrees: resampling error of the measured angle


def _flip_repairs(task: Task, kind: str, mapping: Mapping[int, int],
                  data: Mapping[str, torch.Tensor]) -> str:
    """Check on the data that ``mapping`` undoes what a flip does to a segmentation task.

    Each class has a mean position along the flip's axis in the data (MultiDigits' left digit
    sits left of the right one). After flipping the masks and mapping their classes, every
    mapped class must sit nearer its own place than any other class's place. Returns the
    problem, or '' when the map repairs the flip.
    """
    masks = data[task.name]
    axis = -1 if kind == "horizontal_flip" else -2
    flipped = masks.flip(axis)
    mapped = flipped.clone()
    for old, new in mapping.items():
        mapped[flipped == old] = new
    coord = torch.arange(masks.shape[axis], dtype=torch.float64)
    coord = coord if axis == -1 else coord[:, None]

    def place(labels: torch.Tensor, cls: int) -> float:
        pixels = labels == cls
        return float((coord * pixels).sum() / pixels.sum()) if pixels.any() else float("nan")

    home = {c: place(masks, c) for c in range(task.num_classes) if (masks == c).any()}
    axis_name = "x" if axis == -1 else "y"
    for cls in sorted(mapping):
        if cls not in home:
            continue
        now = place(mapped, cls)
        nearest = min(home, key=lambda c: abs(home[c] - now))
        if nearest != cls:
            return (f"the label map {dict(mapping)} does not repair it: after the flip and the "
                    f"map, class {cls} sits at {axis_name} = {now:.1f} on average, nearer where "
                    f"class {nearest} belongs ({home[nearest]:.1f}) than where class {cls} belongs "
                    f"({home[cls]:.1f}) (measured on {len(masks)} samples of the data)")
    return ""


# =============================================================================================
# Judging one cell


def _judge(
    name: str, info: TransformInfo, task: Task, maps: Mapping[str, dict[int, int]],
    measured: _Measured | None, tasks: Mapping[str, Task], data: Mapping[str, torch.Tensor] | None,
) -> AuditRow:
    """One cell of the audit; ``maps`` are the label maps given to ``audit``, ``measured`` what
    the audit measured of the transform (geometric transforms only)."""
    effect = task.augmentation[info.kind]
    own = info.label_maps.get(task.name)
    row = {"transform": name, "kind": info.kind, "task": task.name, "effect": effect}
    if own is not None and effect not in (LabelEffect.PERMUTES, LabelEffect.BREAKS):
        # The transform applies its map whenever it fires: on labels that are right, a map
        # would make them wrong.
        return AuditRow(**row, allowed=False, label_map=dict(own), reason=(
            f"it carries the label map {dict(own)} for task {task.name!r}, but the task declares "
            f"that a transform of kind {info.kind!r} {effect.value} its labels, so the map would "
            "corrupt them"))
    problems, facts = _measured_problems(task, measured, tasks)
    if problems:
        return AuditRow(**{**row, "effect": LabelEffect.BREAKS}, allowed=False,
                        reason="; ".join(problems))
    facts = f" ({facts})" if facts else ""
    if effect is LabelEffect.KEEPS:
        return AuditRow(**row, allowed=True, reason=f"the labels stay right as they are{facts}")
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
            "only); use mtlaug_lib.augment.mixing.MixUp or CutMix"))
    given = maps.get(task.name) if info.kind in FLIP_KINDS else None
    mapping = own if own is not None else given
    if effect is LabelEffect.BREAKS:
        if mapping is not None:
            return AuditRow(**row, allowed=False, label_map=dict(mapping), reason=(
                f"no label map repairs it: the task declares that a transform of kind "
                f"{info.kind!r} breaks its labels, which is more than exchanging its classes; "
                "remove the transform"))
        return AuditRow(**row, allowed=False, reason=(
            f"the task declares that a transform of kind {info.kind!r} breaks its labels: "
            "remove the transform"))
    # PERMUTES: a flip exchanges the task's classes; a map that exchanges them back repairs it
    if mapping is None:
        return AuditRow(**row, allowed=False, reason=(
            f"the task declares that a transform of kind {info.kind!r} exchanges its classes: "
            f"pass label_maps={{{task.name!r}: {{old: new, ...}}}} with the exchange that undoes "
            "it, or remove the transform"))
    if own is None and not info.takes_label_maps:
        return AuditRow(**row, allowed=False, label_map=dict(mapping), reason=(
            f"a label map would repair it, but {info.name} from torchvision.transforms (v1) "
            "cannot apply one; use torchvision.transforms.v2"))
    if task.kind == SEGMENTATION and data is not None:
        problem = _flip_repairs(task, info.kind, mapping, data)
        if problem:
            return AuditRow(**row, allowed=False, label_map=dict(mapping), reason=problem)
    return AuditRow(**row, allowed=True, label_map=dict(mapping), reason=(
        f"repaired: the label map {dict(mapping)} is applied whenever the flip fires"
        + (" (checked on the data: each class is back where it belongs)"
           if task.kind == SEGMENTATION else "")))


def _needs_data(leaves: Sequence[tuple[str, TransformInfo]], tasks: Mapping[str, Task],
                maps: Mapping[str, dict[int, int]]) -> tuple[bool, list[Region], set[str]]:
    """Whether the audit must measure on data, the regions to measure, the masks it needs."""
    kinds = {info.kind for _, info in leaves}
    regions = list(dict.fromkeys(
        t.region for t in tasks.values() if t.region is not None and t.kind == CLASSIFICATION))
    geometric = "geometric" in kinds and any(
        t.region is not None or t.max_rotation is not None or t.input_size is not None
        for t in tasks.values())
    permuted = {
        t.name for t in tasks.values() if t.kind == SEGMENTATION
        and any(t.augmentation[k] is LabelEffect.PERMUTES for k in kinds & set(FLIP_KINDS))
        and (t.name in maps or any(t.name in info.label_maps for _, info in leaves))
    }
    keys = ({key for key, _ in regions} if geometric else set()) | permuted
    return geometric or bool(permuted), regions if geometric else [], keys


def audit(
    pipeline: Any, tasks: Mapping[str, Task], label_maps: LabelMaps | None = None, *,
    data: Mapping[str, torch.Tensor] | None = None, seed: int = 0,
) -> Audit:
    """What each transform of ``pipeline`` does to each task's labels, and whether it may run.

    Args:
        pipeline: a torchvision v2 (or v1) transform or container, a list of transforms, or
            the course's own transforms (``SampleTransform``, ``RandomFlip``,
            ``BatchAugment``, ``MixUp``, ``CutMix``).
        tasks: the tasks, by name; each declares the effect of each kind of transform, and
            what a geometric transform may do (``region``, ``min_visible``, ``max_rotation``,
            ``input_size``).
        label_maps: ``{task: {old: new}}``: for a flip that exchanges ``task``'s classes, the
            exchange that undoes it (applied when the flip fires; see ``check_pipeline``). It
            must be a permutation with no class mapped to itself, and for a mask it must put
            every class back where it belongs on the data. A map that no flip needs is an error.
        data: a sample of the data to measure on: ``{"image": N x C x H x W, mask key: integer
            N x H x W}``; by default the first 128 MultiDigits training samples.
        seed: the seed of the measuring draws (the same figures on every machine).

    Returns:
        an ``Audit``: one ``AuditRow`` per transform and task.

    A cell is allowed when the effect is ``keeps``; ``moves`` and the transform moves masks
    (a segmentation task); ``mixes`` and the transform records the mixing for the loss;
    ``permutes`` and a label map that undoes the flip. A geometric transform is measured on
    the data (``mtlaug_lib.augment.probe``): it is refused for a task when more than 1% of its random
    draws leave less than ``min_visible`` of the task's object in view, when it rotates past
    ``max_rotation``, or when the pipeline's output is not ``input_size``; the reason gives the
    measured figures. An unknown transform is an error.
    """
    tasks = _check_tasks(tasks)
    maps = _check_label_maps(label_maps, tasks)
    leaves = list(_walk(pipeline))
    for name, info in leaves:
        _check_label_maps(info.label_maps, tasks, f"label maps of {name}")
    needed, regions, keys = _needs_data(leaves, tasks, maps)
    sample = _check_data(data, keys) if needed else None
    measured = _measure_all(leaves, sample, regions, seed) if sample is not None else {}
    rows, flipped = [], set()
    for name, info in leaves:
        for task in tasks.values():
            rows.append(_judge(name, info, task, maps, measured.get(name), tasks, sample))
            if info.kind in FLIP_KINDS and task.augmentation[info.kind] in (
                LabelEffect.PERMUTES, LabelEffect.BREAKS
            ):
                flipped.add(task.name)
    unused = [t for t in maps if t not in flipped]
    if unused:
        raise ValueError(
            f"argument 'label_maps' names task(s) {unused}, but no flip in the pipeline changes "
            "their labels; a label map only repairs a flip that exchanges a task's classes"
        )
    return Audit(rows, list(tasks))


def check_pipeline(
    pipeline: Any, tasks: Mapping[str, Task], label_maps: LabelMaps | None = None, *,
    data: Mapping[str, torch.Tensor] | None = None, seed: int = 0,
) -> Any:
    """Refuse a pipeline that would corrupt a task's labels; return the pipeline to use.

    Raises ``LabelSafetyError`` naming each refused transform, task and reason (see
    ``audit``, which measures on ``data`` with ``seed``). Without ``label_maps`` the pipeline
    is returned as given. With them, the
    returned pipeline applies each map when its flip fires: a torchvision
    ``RandomHorizontalFlip``/``RandomVerticalFlip`` is replaced by ``RandomFlip`` with the same
    probability, and the course's own flips get the maps. Use the returned pipeline.

    Example: ``check_pipeline(v2.RandomHorizontalFlip(), {"mask": tasks["mask"]},
    label_maps={"mask": {1: 2, 2: 1}})`` returns
    ``RandomFlip("horizontal", p=0.5, label_maps={"mask": {1: 2, 2: 1}})``.
    """
    report = audit(pipeline, tasks, label_maps, data=data, seed=seed)
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
    """The maps of the tasks whose classes a flip of ``kind`` exchanges."""
    return {t: m for t, m in maps.items()
            if tasks[t].augmentation[kind] is LabelEffect.PERMUTES}


def _repair(transform: Any, tasks: Mapping[str, Task], maps: Mapping[str, dict[int, int]]):
    """``transform`` with every flip that breaks a task in ``maps`` applying that map."""
    from .sample import RandomFlip, SampleTransform  # lazily: augment imports this module

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
