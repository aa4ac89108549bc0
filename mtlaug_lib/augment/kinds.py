"""What the audit knows of a transform: its kind, what it does with masks, and what it contains.

Every transform has a *kind* (``tasks.TRANSFORM_KINDS``: photometric, geometric,
horizontal_flip, ...), from which each task's declared label effects follow. This module maps
transforms to ``TransformInfo``: torchvision's own by a table, a user's through ``declare_kind``,
and the library's augmenters through two hooks, so that no code here names an augmenter class:

- ``audit_parts() -> list[TransformInfo]``: an augmenter that is a leaf of a pipeline describes
  its parts (``BatchAugment``: its affine, flip and colour jitter; ``MixUp``; ``RandomFlip``).
- ``audit_inner() -> transform`` and ``with_inner(transform) -> a copy``: an augmenter that
  applies another pipeline (``SampleTransform``) exposes it, and is rebuilt around a repaired
  one by ``check_pipeline``. Its transforms keep the names they would have on their own.

torchvision's containers (``Compose``, ``RandomApply``, ``RandomChoice``, ``RandomOrder``), lists
and tuples are walked into, their members named by place: ``"[2][0] RandomRotation"``. The
hooks are spelled out as the protocols ``Described`` and ``Wrapper``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torchvision.transforms as v1
from torchvision.transforms import v2

from ..core.checks import check_choice
from ..core.tasks import TRANSFORM_KINDS
from .probe import Probe, torchvision_probe

# Importing ``values`` registers its kernels: whatever the audit lets transform label values
# does transform them.
from .values import TRANSFORMS_WITH_VALUE_KERNELS

BATCH_KINDS = ("mixing", "region_mixing")  # kinds that need a whole batch (a partner image)


@dataclass(frozen=True)
class TransformInfo:
    """What the audit knows about one transform (a leaf of a pipeline).

    Attributes:
        name: the transform's class name (or a part of one of the library's augmenters, such
            as ``"BatchAugment.affine"``).
        kind: one of ``tasks.TRANSFORM_KINDS``.
        handles_masks: it applies the right operation to a mask (moves it with the image under
            a geometric transform, leaves it alone under a photometric one). False for
            ``torchvision.transforms`` (v1), which sees the image only, and for transforms
            that pass masks through untouched (``RandomErasing``) or refuse them.
        mixes_losses: it records the mixing coefficients for the loss (the library's MixUp and
            CutMix; not torchvision's, which mix one label tensor only).
        batch_only: it needs a whole batch (MixUp, CutMix, ``BatchAugment``).
        takes_label_maps: a flip that can apply a label map when it fires.
        label_maps: the label maps it applies when it fires, ``{task: {old: new}}``.
        transforms_values: it also changes the values of depth and normals as the image's
            geometry changes (``TaskKind.transform_values``): the library's ``BatchAugment``
            and ``RandomFlip``, and the v2 transforms whose functionals have kernels for
            ``mtlaug_lib.augment.values``' label maps. A v2 transform without them passes
            depth and normals through untouched.
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
    transforms_values: bool = False
    v1: bool = False
    probe: Probe | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in TRANSFORM_KINDS:
            raise ValueError(
                f"transform {self.name}: kind is {self.kind!r}, expected one of {TRANSFORM_KINDS}"
            )


class Described(Protocol):
    """The hook of an augmenter that is a leaf of a pipeline: it describes its parts."""

    def audit_parts(self) -> list[TransformInfo]: ...


class Wrapper(Protocol):
    """The hook of an augmenter that applies another pipeline (a container of one)."""

    def audit_inner(self) -> Any: ...

    def with_inner(self, transform: Any) -> Wrapper: ...


# torchvision's transforms by kind (v2 and, for auditing the article's code, v1 of the same name).
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
# The flips that check_pipeline can replace with RandomFlip, which applies label maps.
_V2_FLIPS = (v2.RandomHorizontalFlip, v2.RandomVerticalFlip)

# class -> (kind, handles_masks, v1); filled from the table above and by ``declare_kind``.
_REGISTRY: dict[type, tuple[str, bool, bool]] = {}
# The classes that also transform label values (``values``' kernels, or ``declare_kind``).
_VALUE_CLASSES: set[type] = set(TRANSFORMS_WITH_VALUE_KERNELS)
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


def declare_kind(
    transform: Any, kind: str, *, handles_masks: bool = False, transforms_values: bool = False
) -> Any:
    """Tell the audit the kind of a custom transform (a class, or one instance); return it.

    The audit never assumes that a transform it does not know is safe; this is how a user
    vouches for one. ``handles_masks=True`` says that it also transforms ``tv_tensors.Mask``
    inputs correctly (moves them with a geometric change); without it, a geometric transform
    is refused for a segmentation task, since the mask would stay behind.
    ``transforms_values=True`` says that it also changes depth and normals' values as
    ``TaskKind.transform_values`` does (for instance through kernels registered for
    ``mtlaug_lib.augment.values.ValueMap``); without it, a geometric transform or a flip is
    refused for a task that declares ``transforms``.

    Example: ``declare_kind(v2.Lambda(lambda x: x * 0.9, tv_tensors.Image), "photometric")``.
    """
    check_choice("kind", kind, TRANSFORM_KINDS)
    if isinstance(transform, type):
        _REGISTRY[transform] = (kind, bool(handles_masks), False)
        if transforms_values:
            _VALUE_CLASSES.add(transform)
        else:
            _VALUE_CLASSES.discard(transform)
        return transform
    if not callable(transform):
        raise TypeError(
            f"argument 'transform' is a {type(transform).__name__}, expected a transform (a "
            "callable) or a transform class"
        )
    try:
        setattr(transform, _DECLARED, (kind, bool(handles_masks), bool(transforms_values)))
    except AttributeError as err:
        raise TypeError(
            f"cannot record a kind on this {type(transform).__name__}; declare its class instead"
        ) from err
    return transform


def describe_transform(transform: Any) -> TransformInfo:
    """The audit's view of one transform that is neither a container nor described by its own
    ``audit_parts``: declared, or known by its class."""
    name = type(transform).__name__
    declared = getattr(transform, _DECLARED, None)
    if declared is not None:
        kind, handles, values = declared
        name = getattr(transform, "__name__", name)
        probe = torchvision_probe(transform) if kind == "geometric" else None
        return TransformInfo(name, kind, handles_masks=handles, batch_only=kind in BATCH_KINDS,
                             transforms_values=values, probe=probe)
    for cls in type(transform).__mro__:
        if cls in _REGISTRY:
            kind, handles, is_v1 = _REGISTRY[cls]
            return TransformInfo(
                name, kind, handles_masks=handles, v1=is_v1, batch_only=kind in BATCH_KINDS,
                takes_label_maps=cls in _V2_FLIPS,
                transforms_values=cls in _VALUE_CLASSES,
                probe=torchvision_probe(transform) if kind == "geometric" else None,
            )
    raise TypeError(
        f"unknown transform {name} ({type(transform).__module__}): the audit does not know what "
        "it does to labels and does not assume that it is safe. Declare its kind with "
        f"mtlaug_lib.augment.audit.declare_kind(transform, kind), kind one of {TRANSFORM_KINDS}"
    )


def inner(transform: Any) -> Any | None:
    """The pipeline that a wrapper (an augmenter with the ``audit_inner`` hook) applies, else
    None."""
    hook = getattr(transform, "audit_inner", None)
    return hook() if callable(hook) else None


def children(transform: Any) -> Sequence[Any] | None:
    """The transforms inside a container (v2/v1 Compose, RandomApply, RandomChoice,
    RandomOrder, a list or tuple), else None."""
    if isinstance(transform, (list, tuple)):
        return transform
    if isinstance(transform, _CONTAINER_TYPES):
        return list(transform.transforms)
    return None


def walk(transform: Any, path: str = "") -> Iterator[tuple[str, TransformInfo]]:
    """Every leaf of a pipeline in order: ``(name with its place, info)``."""
    wrapped = inner(transform)
    if wrapped is not None:  # a wrapper adds no place: its pipeline is named as on its own
        yield from walk(wrapped, path)
        return
    members = children(transform)
    if members is not None:
        for i, child in enumerate(members):
            yield from walk(child, f"{path}[{i}]")
        return
    parts = getattr(transform, "audit_parts", None)
    infos = parts() if callable(parts) else [describe_transform(transform)]
    for info in infos:
        yield (f"{path} {info.name}" if path else info.name), info


def transform_kinds(pipeline: Any) -> list[tuple[str, str]]:
    """The kind of every transform in ``pipeline``, in order: ``[(name, kind), ...]``.

    Looks inside ``v2.Compose``, ``RandomApply``, ``RandomChoice``, ``RandomOrder`` (and their
    v1 namesakes, lists and tuples), and into the library's own augmenters (``BatchAugment``
    lists its parts, ``SampleTransform`` its pipeline). A name carries the transform's place,
    such as ``"[2][0] RandomRotation"``. An unknown transform is an error (see
    ``declare_kind``).
    """
    return [(name, info.kind) for name, info in walk(pipeline)]
