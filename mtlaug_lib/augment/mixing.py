"""MixUp and CutMix for a multi-task batch: one coefficient per sample, every head's loss mixed.

MixUp (Zhang et al., 2018) blends each image with a partner image; CutMix (Yun et al., 2019)
pastes a box of the partner into it. A class label cannot be blended or pasted, so the loss
does the mixing instead: ``lam * CE(y) + (1 - lam) * CE(y[perm])`` per sample, with the same
``lam`` (B) and partner index ``perm`` (B) as the images. torchvision's ``v2.MixUp`` and
``v2.CutMix`` turn one label tensor into soft labels and refuse masks, which suits one
classification head only; here the batch carries the mixing under reserved keys and
``MultiTaskLoss`` mixes the loss of every task that declares ``mixes`` for that kind:

- ``"mix.lam"``: float B, the weight of each sample's own labels (CutMix: the area it keeps);
- ``"mix.perm"``: int64 B, the index of each sample's partner in the batch;
- ``"mix.kind"``: 0-dim int64 on the CPU, the index in ``TRANSFORM_KINDS`` of ``"mixing"``
  (MixUp) or ``"region_mixing"`` (CutMix), so each task's declaration decides its loss.

The keys are the core's batch format (``mtlaug_lib.core.batch_format``, which the loss reads);
they contain a dot, so no task name (a Python identifier) can clash with them.

What each task declares (``Task.label_effects``) decides what happens to it:

- ``mixes``: its loss is mixed (classification under both; a mask under MixUp, per pixel);
- ``moves``: its labels are pasted with the image (a mask under CutMix): plain loss;
- ``keeps``: labels and loss untouched; ``breaks``: the mixer refuses to run.

Mixing does not suit a task whose label of a blend is not the blend of the labels: a count or
a regression target that is not linear in the image, an "is there a digit?" detector, or a
mask of overlapping instances under MixUp (a pixel may show both images' objects). Declare
``breaks`` for such a task, and the audit refuses the mixer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
import torch

from ..core.batch_format import IMAGE, MIX_KEYS, MIX_KIND, MIX_LAM, MIX_PERM
from ..core.checks import check_number, check_probability
from ..core.tasks import TRANSFORM_KINDS, LabelEffect, Task
from ..data.multidigits import multidigits_tasks
from .audit import audit
from .common import check_batch, check_tasks, make_generator
from .kinds import TransformInfo


@dataclass(frozen=True)
class MixParams:
    """The random draws of one mixer call (B samples).

    ``lam``: float B, the weight of each sample's own image and labels; ``perm``: int64 B, the
    partner of each sample; ``box``: int64 B x 4 (top, left, bottom, right; bottom and right
    excluded), the pasted region (CutMix only, else None). A sample left unmixed (probability
    ``1 - p``) has ``lam`` 1 and an empty box.
    """

    lam: torch.Tensor
    perm: torch.Tensor
    box: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.lam)

    def to(self, device: torch.device | str) -> MixParams:
        return MixParams(**{f.name: None if getattr(self, f.name) is None
                            else getattr(self, f.name).to(device, non_blocking=True)
                            for f in fields(self)})


def _beta(alpha: float, size: int, generator: torch.Generator | None) -> torch.Tensor:
    """``size`` draws of Beta(alpha, alpha) as float32, repeatable from a torch generator.

    torch's Beta distribution takes no generator, so NumPy draws them from a seed that the
    torch generator gives (a seeded run repeats; the global generator follows manual_seed).
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    draws = np.random.default_rng(seed).beta(alpha, alpha, size)
    return torch.from_numpy(draws).float()


class _Mixer:
    """What MixUp and CutMix share: arguments, batch checks, the call and the audit view."""

    kind = "mixing"

    def __init__(
        self,
        tasks: Mapping[str, Task] | None = None,
        *,
        alpha: float = 1.0,
        p: float = 1.0,
        generator: torch.Generator | int | None = None,
        check: bool = True,
    ) -> None:
        self.tasks = check_tasks(multidigits_tasks() if tasks is None else tasks)
        self.alpha = check_number("alpha", alpha, strict=True)
        self.p = check_probability("p", p)
        self.generator = make_generator(generator)
        self.last_params: MixParams | None = None
        if check:  # refuse, now, a mixer that would corrupt a task's labels
            audit(self, self.tasks).raise_for_problems()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(tasks={tuple(self.tasks)}, alpha={self.alpha}, "
                f"p={self.p})")

    def audit_parts(self) -> list[TransformInfo]:
        return [TransformInfo(type(self).__name__, self.kind,
                              handles_masks=self.kind == "region_mixing", mixes_losses=True,
                              batch_only=True)]

    def _check_batch(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if isinstance(batch, Mapping) and any(k in batch for k in MIX_KEYS):
            raise ValueError(
                f"{type(self).__name__}: the batch is already mixed (it holds {MIX_LAM!r}); "
                "apply one mixer per batch"
            )
        return check_batch(type(self).__name__, batch, self.tasks, action="mix")

    def sample_params(self, batch_size: int, height: int, width: int) -> MixParams:
        raise NotImplementedError

    def _mix(self, batch: dict[str, torch.Tensor], p: MixParams) -> None:
        raise NotImplementedError

    def __call__(
        self, batch: Mapping[str, torch.Tensor], params: MixParams | None = None
    ) -> dict[str, torch.Tensor]:
        """batch: ``{"image": float B x C x H x W, task: labels}`` -> the mixed batch, with
        ``"mix.lam"``, ``"mix.perm"`` and ``"mix.kind"`` added; ``params`` replays a draw."""
        image = self._check_batch(batch)
        b, _, h, w = image.shape
        if params is None:
            params = self.sample_params(b, h, w)
        elif len(params) != b:
            raise ValueError(f"argument 'params' holds {len(params)} samples, the batch {b}")
        self.last_params = params
        p = params.to(image.device)
        out = dict(batch)
        self._mix(out, p)
        out[MIX_LAM] = p.lam.to(image.dtype)
        out[MIX_PERM] = p.perm
        out[MIX_KIND] = torch.tensor(TRANSFORM_KINDS.index(self.kind))  # CPU: read without sync
        return out


class MixUp(_Mixer):
    """MixUp for a multi-task batch: ``image = lam * image + (1 - lam) * image[perm]``.

    ``lam`` ~ Beta(alpha, alpha), one per sample (1 for a sample left unmixed, probability
    ``1 - p``); ``perm`` is a random permutation of the batch. Labels stay as they are: the
    loss mixes them (``MultiTaskLoss`` reads the batch's mixing keys). A segmentation task that
    declares ``mixes`` (the default) gets the per-pixel mixed loss, a soft target
    ``lam * onehot(mask) + (1 - lam) * onehot(mask[perm])``: right for the blend, though a
    blended digit's edge is ambiguous; CutMix suits masks better (the mask moves).

    Args:
        tasks: the tasks (default ``multidigits_tasks()``); audited when built.
        alpha: the Beta distribution's parameter (1: lam uniform in [0, 1]; small: mild mixing).
        p: the probability that a sample is mixed.
        generator: a seed, a CPU ``torch.Generator``, or None for torch's global generator.
        check: audit the mixer against ``tasks`` when built (``False`` only to show what the
            audit reports; ``MultiTaskLoss`` still refuses a task that mixing breaks).

    Call: ``mixup(batch)`` or ``mixup(batch, params)``; ``mixup.last_params`` holds the draw.
    """

    kind = "mixing"

    def sample_params(self, batch_size: int, height: int, width: int) -> MixParams:
        """Draw ``lam`` and ``perm`` on the CPU."""
        g = self.generator
        perm = torch.randperm(batch_size, generator=g)
        mixed = torch.rand(batch_size, generator=g) < self.p
        lam = torch.where(mixed, _beta(self.alpha, batch_size, g), torch.ones(batch_size))
        return MixParams(lam=lam, perm=perm)

    def _mix(self, batch: dict[str, torch.Tensor], p: MixParams) -> None:
        image = batch[IMAGE]
        lam = p.lam.to(image.dtype).view(-1, 1, 1, 1)
        batch[IMAGE] = lam * image + (1 - lam) * image[p.perm]


class CutMix(_Mixer):
    """CutMix for a multi-task batch: a box of the partner image pasted into each image.

    The box covers a fraction ``1 - lam0`` of the image (``lam0`` ~ Beta(alpha, alpha)) around a
    uniform random centre, clipped to the image; ``lam`` is the area fraction each image keeps
    (exact, after clipping). Each mask task that declares ``moves`` (the default for
    segmentation) gets the partner's mask pasted in the same box, so its loss needs no mixing;
    classification tasks' losses are mixed with ``lam``. Depth and normals move the same way (a
    pasted region carries its own depth and normals; normals B x 3 x H x W get the same box).

    Args: as ``MixUp``. Call: ``cutmix(batch)`` or ``cutmix(batch, params)``.
    """

    kind = "region_mixing"

    def sample_params(self, batch_size: int, height: int, width: int) -> MixParams:
        """Draw ``perm`` and each sample's box on the CPU; ``lam`` is the area kept."""
        g, b = self.generator, batch_size
        perm = torch.randperm(b, generator=g)
        mixed = torch.rand(b, generator=g) < self.p
        cut = torch.sqrt(1.0 - _beta(self.alpha, b, g))  # side fraction of the box
        centre = torch.rand(b, 2, generator=g) * torch.tensor([height, width])
        half = cut[:, None] * torch.tensor([height, width]) / 2
        size = torch.tensor([height, width])
        top_left = (centre - half).round().clamp(min=torch.zeros(2), max=size).long()
        bottom_right = (centre + half).round().clamp(min=torch.zeros(2), max=size).long()
        bottom_right = torch.where(mixed[:, None], bottom_right, top_left)  # unmixed: empty
        area = (bottom_right - top_left).prod(dim=1)
        lam = 1.0 - area.float() / (height * width)
        return MixParams(lam=lam, perm=perm, box=torch.cat([top_left, bottom_right], dim=1))

    def _mix(self, batch: dict[str, torch.Tensor], p: MixParams) -> None:
        image = batch[IMAGE]
        _, _, h, w = image.shape
        top, left, bottom, right = (v.view(-1, 1, 1) for v in p.box.unbind(1))
        rows = torch.arange(h, device=image.device).view(1, h, 1)
        cols = torch.arange(w, device=image.device).view(1, 1, w)
        inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)  # B x H x W
        batch[IMAGE] = torch.where(inside[:, None], image[p.perm], image)
        for name, task in self.tasks.items():
            if name in batch and task.label_effects[self.kind] is LabelEffect.MOVES:
                labels = batch[name]  # B x H x W, or B x 3 x H x W (normals): broadcast over 3
                paste = inside if labels.ndim == 3 else inside[:, None]
                batch[name] = torch.where(paste, labels[p.perm], labels)
