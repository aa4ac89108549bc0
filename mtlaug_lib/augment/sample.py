"""Augmenting one sample with all its targets: a torchvision v2 pipeline on a sample dict.

``SampleTransform`` runs a ``torchvision.transforms.v2`` pipeline on a sample dict: the image
as ``tv_tensors.Image``, each mask as ``tv_tensors.Mask`` and each depth or normal map as
``mtlaug_lib.augment.values.DepthMap``/``NormalMap`` in one call (so one random draw moves
them all, labels with nearest-neighbour sampling, and the values of depth and normals change
with the image), class labels untouched. Use it as
``MultiDigits(transform=...)`` with a ``DataLoader``. Its pipeline is audited and its flips
repaired when built (``check_pipeline``, ``mtlaug_lib.augment.repair``); the library's flip,
which applies label maps, is ``RandomFlip`` (``mtlaug_lib.augment.flip``). Whole batches on
their device: ``mtlaug_lib.augment.batch``; MixUp and CutMix: ``mtlaug_lib.augment.mixing``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torchvision import tv_tensors

from ..core.batch_format import IMAGE
from ..core.checks import describe_value, is_int_tensor
from ..core.tasks import Task
from ..data.multidigits import multidigits_tasks
from .common import check_tasks, label_layout
from .kinds import walk
from .label_maps import LabelMaps
from .repair import check_pipeline
from .values import value_map_type


class SampleTransform:
    """A torchvision v2 transform applied to a sample dict: image and masks in one call.

    ``sample["image"]`` (float or uint8, C x H x W) goes in as ``tv_tensors.Image``, each
    segmentation task's mask (integer, H x W) as ``tv_tensors.Mask``, each depth map (float
    H x W) as a ``DepthMap`` and each normal map (float 3 x H x W) as a ``NormalMap``
    (``mtlaug_lib.augment.values``), so one random draw moves them all: torchvision resamples
    masks with nearest neighbours, and the kernels of ``values`` resample depth and normals the
    same way and transform their values (a flip negates the normals' x, a zoom divides depth).
    Class labels (0-dim integer tensors or ints) pass through untouched, unless a label map of
    a flip applies. Plain tensors come back.

    Pixels a transform brings in from outside the image get each task's ``Task.label_fill``:
    depth and normals 0 (a hole) whatever fill the transform is given; a mask its task's fill,
    by shifting its classes so that torchvision's default mask fill (0) lands on it (a scene's
    semantic map: ``IGNORE_INDEX``; MultiDigits' mask: 0, as before). So give the transform no
    fill for ``tv_tensors.Mask``: a mask fill outside the task's classes is refused after the
    transform, and one inside them would be shifted (for the image, ``fill={tv_tensors.Image:
    0.5}`` is fine).

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
        self.tasks = check_tasks(multidigits_tasks() if tasks is None else tasks)
        for name, info in walk(transform):
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

    def __repr__(self) -> str:  # one line, though torchvision's Compose spreads over several
        pipeline = " ".join(repr(self.transform).split())
        return f"SampleTransform({pipeline}, tasks={tuple(self.tasks)})"

    def audit_inner(self) -> Callable[..., Any]:
        """The pipeline it applies (the audit's hook: its transforms are audited as if they
        stood alone)."""
        return self.transform

    def with_inner(self, transform: Callable[..., Any]) -> SampleTransform:
        """A copy that applies ``transform`` instead, not audited again (``check_pipeline``
        rebuilds it around the pipeline it repaired)."""
        out = copy.copy(self)
        out.transform = transform
        return out

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """sample: ``{"image": C x H x W, mask task: H x W, class task: 0-dim}`` -> the same
        keys, augmented, as plain tensors."""
        inputs = self._wrap(sample)
        out = self.transform(inputs)
        return self._unwrap(out, inputs, sample)

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
            if task.kind_spec.dense:
                wrapped[key] = self._wrap_dense(key, task, value, size)
            else:
                ok_int = isinstance(value, int) and not isinstance(value, bool)
                ok_tensor = (type(value) is torch.Tensor and value.ndim == 0
                             and is_int_tensor(value))
                if not (ok_int or ok_tensor):
                    raise TypeError(
                        f"SampleTransform: sample[{key!r}] (a classification task) is a "
                        f"{describe_value(value)}, expected a class index (an int or a 0-dim "
                        "integer tensor)"
                    )
                wrapped[key] = value  # a plain tensor: v2 passes it through untouched
        return wrapped

    def _wrap_dense(self, key: str, task: Task, value: Any, size: tuple[int, ...]) -> Any:
        """A dense label map as the ``TVTensor`` that moves it: a mask (its classes shifted by
        the task's fill, so that torchvision's fill 0 lands on it) or a ``ValueMap``."""
        spec = task.kind_spec
        cls = tv_tensors.Mask if spec.has_classes else value_map_type(task.kind)
        if cls is None:
            raise TypeError(
                f"SampleTransform: task {key!r} is a {task.kind} task, whose labels it cannot "
                "transform (no tv_tensor for them)"
            )
        shape = spec.label_shape(1, *size)[1:]
        layout = label_layout(spec).removeprefix("B x ")  # "H x W", "3 x H x W"
        want = (f"an integer tensor {layout} (a mask)" if spec.has_classes
                else f"a float tensor {layout}")
        ok = (isinstance(value, torch.Tensor) and type(value) in (torch.Tensor, cls)
              and (is_int_tensor(value) if spec.has_classes else value.is_floating_point()))
        if not ok:
            raise TypeError(
                f"SampleTransform: sample[{key!r}] (a {task.kind} task) is a "
                f"{describe_value(value)}, expected {want}"
            )
        if tuple(value.shape) != shape:
            raise ValueError(
                f"SampleTransform: sample[{key!r}] has shape {tuple(value.shape)}, expected "
                f"{shape}, the image's height and width ({task.kind} {spec.label_layout})"
            )
        plain = value.as_subclass(torch.Tensor)
        fill = task.label_fill
        if spec.has_classes and fill:
            plain = plain.long() - int(fill)
        return cls(plain)

    def _unwrap_dense(self, key: str, task: Task, value: Any, size: tuple[int, ...],
                      original: torch.Tensor) -> torch.Tensor:
        """The plain labels of a transformed dense map (the mask's shift undone), checked."""
        spec = task.kind_spec
        cls = tv_tensors.Mask if spec.has_classes else value_map_type(task.kind)
        shape = spec.label_shape(1, *size)[1:]
        what = "mask" if spec.has_classes else f"{task.kind} map"
        if not isinstance(value, cls) or tuple(value.shape) != shape:
            raise ValueError(
                f"SampleTransform: after the transform, sample[{key!r}] is a "
                f"{describe_value(value)}, expected a {cls.__name__} of shape {shape}, the "
                f"image's size; a transform changed the image without the {what}"
            )
        plain = value.as_subclass(torch.Tensor)
        fill = task.label_fill
        if spec.has_classes and fill:
            plain = plain + int(fill)
            lowest = min(0, int(fill))
            if plain.numel() and (int(plain.min()) < lowest
                                  or int(plain.max()) >= task.num_classes):
                raise ValueError(
                    f"SampleTransform: after the transform, sample[{key!r}] holds classes in "
                    f"[{int(plain.min())}, {int(plain.max())}], expected [{lowest}, "
                    f"{task.num_classes - 1}]; give the transform no fill for "
                    f"tv_tensors.Mask: pixels from outside the image get the task's fill "
                    f"({fill}) already"
                )
            plain = plain.to(original.dtype)
        return plain

    def _unwrap(self, out: Any, inputs: Mapping[str, Any],
                sample: Mapping[str, Any]) -> dict[str, Any]:
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
            task = self.tasks[key]
            if task.kind_spec.dense:
                result[key] = self._unwrap_dense(key, task, value, size, sample[key])
            else:
                result[key] = value
        return result
