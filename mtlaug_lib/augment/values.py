"""Label maps whose values change with the image, on torchvision v2's sample path.

torchvision v2 moves a ``tv_tensors.Mask`` with the image but knows nothing of depth or
normals. ``DepthMap`` (H x W metres) and ``NormalMap`` (3 x H x W unit vectors) are two small
``TVTensor`` subclasses (``ValueMap``) with kernels registered for torchvision's geometric
functionals (``register_kernel``): each resamples the labels as a mask (nearest neighbours,
never blending values across an object's edge; pixels brought in from outside the image get
the hole value 0, whatever ``fill`` the transform was given), then changes their values with
the task kind's ``transform_values`` and the linear map L the functional's arguments define
(``TaskKind.transform_values`` has the physics): a flip negates the normals' x, a rotation
rotates their x-y components, a zoom by s divides depth by s; a crop or a pad (a shift of the
principal point) changes no value. A resize counts as a zoom, since the network is taken to see
every image through the same focal length in pixels: to change the resolution of a whole data
set, load or render it at that size instead (``Scenes(image_size=...)``), which keeps depth.

A v2 transform whose functional has no kernel here passes a ``ValueMap`` through untouched
(torchvision's rule for an unknown ``TVTensor``): silently wrong labels. So the audit allows a
value-transforming task (``transforms``) only under the transforms of
``TRANSFORMS_WITH_VALUE_KERNELS``, which call nothing but the functionals registered here.
``SampleTransform`` wraps the labels (``value_map_type`` finds the class of a task's kind).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

from ..core.task_kinds import TASK_KINDS, TaskKind
from .functional import rotation_scale_shear


class ValueMap(tv_tensors.TVTensor):
    """A per-pixel label map whose values a geometric transform changes (a ``TVTensor``).

    Subclasses name their task kind (``kind_name``, a key of ``TASK_KINDS`` whose kind has a
    value transform); the kernels below are registered for this base class and found through
    the subclass's MRO.
    """

    kind_name: ClassVar[str]

    @classmethod
    def kind(cls) -> TaskKind:
        return TASK_KINDS[cls.kind_name]

    def __new__(cls, data: Any, *, dtype: torch.dtype | None = None,
                device: torch.device | str | None = None,
                requires_grad: bool | None = None) -> ValueMap:
        tensor = cls._to_tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)
        return tensor.as_subclass(cls)


class DepthMap(ValueMap):
    """Metric depth of one sample: float H x W, metres, 0 for a hole."""

    kind_name = "depth"


class NormalMap(ValueMap):
    """Unit surface normals of one sample in the camera frame: float 3 x H x W, (0, 0, 0) for a
    hole."""

    kind_name = "normals"


VALUE_MAPS: tuple[type[ValueMap], ...] = (DepthMap, NormalMap)


def value_map_type(kind: str) -> type[ValueMap] | None:
    """The ``ValueMap`` class of a task kind (``"depth"``, ``"normals"``), else None."""
    return next((cls for cls in VALUE_MAPS if cls.kind_name == kind), None)


def _apply(inpt: ValueMap, moved: torch.Tensor, linear: torch.Tensor) -> ValueMap:
    """``moved`` (the labels resampled as a mask, one sample) with their values transformed by
    the 2 x 2 map ``linear``, wrapped like ``inpt``."""
    linear = linear.to(device=moved.device, dtype=torch.float64)
    if torch.equal(linear, torch.eye(2, dtype=torch.float64, device=moved.device)):
        return tv_tensors.wrap(moved, like=inpt)  # a crop or a pad: values unchanged
    values = type(inpt).kind().transform_values(moved[None], linear[None].to(moved.dtype))[0]
    return tv_tensors.wrap(values, like=inpt)


def _plain(inpt: ValueMap) -> torch.Tensor:
    return inpt.as_subclass(torch.Tensor)


def _diagonal(x: float, y: float) -> torch.Tensor:
    return torch.tensor([[x, 0.0], [0.0, y]], dtype=torch.float64)


def _rss(angle: float, scale: float, shear: list[float]) -> torch.Tensor:
    """torchvision's forward rotation-scale-shear of ``F.affine`` (``angle`` clockwise on
    screen), for one sample (2 x 2)."""
    return rotation_scale_shear(torch.tensor([float(angle)], dtype=torch.float64),
                                torch.tensor([float(scale)], dtype=torch.float64),
                                torch.tensor([[float(v) for v in shear]], dtype=torch.float64))[0]


def _shear_pair(shear: Any) -> list[float]:
    if isinstance(shear, (int, float)):
        return [float(shear), 0.0]
    shear = list(shear)
    return [float(shear[0]), float(shear[1]) if len(shear) > 1 else 0.0]


@F.register_kernel(F.horizontal_flip, ValueMap)
def _horizontal_flip(inpt: ValueMap) -> ValueMap:
    return _apply(inpt, F.horizontal_flip_mask(_plain(inpt)), _diagonal(-1.0, 1.0))


@F.register_kernel(F.vertical_flip, ValueMap)
def _vertical_flip(inpt: ValueMap) -> ValueMap:
    return _apply(inpt, F.vertical_flip_mask(_plain(inpt)), _diagonal(1.0, -1.0))


@F.register_kernel(F.affine, ValueMap)
def _affine(inpt: ValueMap, angle: float, translate: list[float], scale: float,
            shear: list[float], interpolation: Any = None, fill: Any = None,
            center: list[float] | None = None) -> ValueMap:
    moved = F.affine_mask(_plain(inpt), angle=angle, translate=translate, scale=scale,
                          shear=shear, fill=None, center=center)  # fill None: the hole, 0
    return _apply(inpt, moved, _rss(angle, scale, _shear_pair(shear)))


@F.register_kernel(F.rotate, ValueMap)
def _rotate(inpt: ValueMap, angle: float, interpolation: Any = None, expand: bool = False,
            center: list[float] | None = None, fill: Any = None) -> ValueMap:
    moved = F.rotate_mask(_plain(inpt), angle=angle, expand=expand, center=center, fill=None)
    # F.rotate turns counter-clockwise on screen, F.affine clockwise: rotate(a) = affine(-a).
    return _apply(inpt, moved, _rss(-angle, 1.0, [0.0, 0.0]))


@F.register_kernel(F.crop, ValueMap)
def _crop(inpt: ValueMap, top: int, left: int, height: int, width: int) -> ValueMap:
    return tv_tensors.wrap(F.crop_mask(_plain(inpt), top, left, height, width), like=inpt)


@F.register_kernel(F.center_crop, ValueMap)
def _center_crop(inpt: ValueMap, output_size: list[int]) -> ValueMap:
    return tv_tensors.wrap(F.center_crop_mask(_plain(inpt), output_size), like=inpt)


@F.register_kernel(F.pad, ValueMap)
def _pad(inpt: ValueMap, padding: list[int], fill: Any = None,
         padding_mode: str = "constant") -> ValueMap:
    if padding_mode != "constant":  # a reflected border mirrors normals without negating them
        raise ValueError(
            f"pad: padding_mode is {padding_mode!r}, but {type(inpt).__name__} labels can only "
            "be padded with holes; expected 'constant'"
        )
    return tv_tensors.wrap(F.pad_mask(_plain(inpt), padding, fill=0), like=inpt)


def _zoom(inpt: ValueMap, moved: torch.Tensor, height: int, width: int) -> ValueMap:
    """A resize of a ``height`` x ``width`` region to ``moved``'s size: L = diag(sx, sy)."""
    return _apply(inpt, moved, _diagonal(moved.shape[-1] / width, moved.shape[-2] / height))


@F.register_kernel(F.resize, ValueMap)
def _resize(inpt: ValueMap, size: list[int] | None, interpolation: Any = None,
            max_size: int | None = None, antialias: bool | None = True) -> ValueMap:
    plain = _plain(inpt)
    moved = F.resize_mask(plain, size, interpolation=InterpolationMode.NEAREST,
                          max_size=max_size)
    return _zoom(inpt, moved, plain.shape[-2], plain.shape[-1])


@F.register_kernel(F.resized_crop, ValueMap)
def _resized_crop(inpt: ValueMap, top: int, left: int, height: int, width: int,
                  size: list[int], interpolation: Any = None,
                  antialias: bool | None = True) -> ValueMap:
    moved = F.resized_crop_mask(_plain(inpt), top, left, height, width, size)
    return _zoom(inpt, moved, height, width)


# The v2 transforms that call only the functionals registered above, so they move a ValueMap
# and transform its values (the audit allows them for a task that declares "transforms").
TRANSFORMS_WITH_VALUE_KERNELS: tuple[type, ...] = tuple(
    getattr(v2, name) for name in (
        "RandomHorizontalFlip", "RandomVerticalFlip", "RandomAffine", "RandomRotation",
        "RandomResizedCrop", "RandomCrop", "Resize", "CenterCrop", "Pad", "RandomZoomOut",
        "RandomResize", "ScaleJitter", "RandomShortestSize",
    ) if hasattr(v2, name)
)
