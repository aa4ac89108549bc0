"""Augmenting one sample with all its targets: a torchvision v2 pipeline on a sample dict.

``SampleTransform`` runs a ``torchvision.transforms.v2`` pipeline on a sample dict: the image
as ``tv_tensors.Image`` and each mask as ``tv_tensors.Mask`` in one call (so one random draw
moves both, masks with nearest-neighbour sampling), class labels untouched. Use it as
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
from ..core.tasks import SEGMENTATION, Task
from ..data.multidigits import multidigits_tasks
from .common import check_tasks
from .kinds import walk
from .label_maps import LabelMaps
from .repair import check_pipeline


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
                ok = (isinstance(value, torch.Tensor) and is_int_tensor(value)
                      and type(value) in (torch.Tensor, tv_tensors.Mask))
                if not ok:
                    raise TypeError(
                        f"SampleTransform: sample[{key!r}] (a segmentation task) is a "
                        f"{describe_value(value)}, expected an integer tensor H x W (a mask)"
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
                             and is_int_tensor(value))
                if not (ok_int or ok_tensor):
                    raise TypeError(
                        f"SampleTransform: sample[{key!r}] (a classification task) is a "
                        f"{describe_value(value)}, expected a class index (an int or a 0-dim "
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
                        f"{describe_value(value)}, expected a Mask of the image's size {size}; "
                        "a transform changed the image without the mask"
                    )
                result[key] = value.as_subclass(torch.Tensor)
            else:
                result[key] = value
        return result
