"""The library's flip: a random flip that applies label maps when it fires.

A horizontal flip puts MultiDigits' left digit on the right: it exchanges the mask's classes,
which a label map exchanges back (``mtlaug_lib.augment.label_maps``). A flip negates the x
component of surface normals: torchvision's flip kernels registered for
``mtlaug_lib.augment.values``' label maps do it, and ``RandomFlip`` uses them. torchvision's
flips cannot apply a label map, so ``check_pipeline`` replaces them with ``RandomFlip`` when
given label maps. It is a torchvision v2 transform: use it inside ``SampleTransform``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..core.checks import check_choice, check_probability
from .kinds import TransformInfo
from .label_maps import LabelMaps, merge_maps, plain_maps


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
    """A random flip that applies label maps when it fires: the library's own flip.

    It flips every ``tv_tensor`` in the input (with torchvision's kernels, so depth and normals
    wrapped as ``mtlaug_lib.augment.values.DepthMap``/``NormalMap`` get their values transformed: a
    flip negates the normals' x) with probability ``p``, one draw per call like torchvision; when it
    fires it also maps the labels of each task in ``label_maps`` (on a sample dict, by key):
    ``{"mask": {1: 2, 2: 1}}`` swaps a mask's classes 1 and 2. This is how a flip that only permutes
    a task's classes becomes safe.

    Args:
        direction: ``"horizontal"`` or ``"vertical"``.
        p: the probability of flipping.
        label_maps: ``{task: {old class: new class}}``, applied when the flip fires.
    """

    def __init__(
        self, direction: str = "horizontal", p: float = 0.5, label_maps: LabelMaps | None = None
    ) -> None:
        super().__init__()
        self.direction = check_choice("direction", direction, ("horizontal", "vertical"))
        self.p = check_probability("p", p)
        self.label_maps = plain_maps(label_maps)
        flip = v2.RandomHorizontalFlip if direction == "horizontal" else v2.RandomVerticalFlip
        self._flip = flip(p=1.0)

    @property
    def kind(self) -> str:
        return f"{self.direction}_flip"

    def audit_parts(self) -> list[TransformInfo]:
        return [TransformInfo(f"RandomFlip({self.direction})", self.kind, handles_masks=True,
                              takes_label_maps=True, label_maps=self.label_maps,
                              transforms_values=True)]

    def with_label_maps(self, label_maps: LabelMaps) -> RandomFlip:
        """A copy that also applies ``label_maps`` (a different map for a task is an error)."""
        return RandomFlip(self.direction, self.p, merge_maps(self.label_maps, label_maps,
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
