"""Augmenting a whole batch with all its targets, on its device, with per-sample parameters.

``BatchAugment`` draws a random affine (and flip) and a colour jitter per sample (torchvision
v2 draws once per call, so a batch passed to it gets one rotation for all its images:
torchvision issue #8484) and applies them with the kernels of ``mtlaug_lib.augment.functional``:
image and every dense label map (masks, depth, normals) in one resampling, the values of depth
and normals transformed with the image (``TaskKind.transform_values``), class labels untouched
(or mapped where the flip fired). Use
it as ``train(..., augment=...)``. It is audited when built (``mtlaug_lib.augment.audit``), and
``check_pipeline`` gives its flip label maps through its ``with_label_maps`` hook.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace

import torch
import torch.nn.functional as F

from ..core.batch_format import IMAGE
from ..core.checks import check_number, check_probability
from ..core.tasks import LabelEffect, Task
from ..data.multidigits import multidigits_tasks
from .audit import audit
from .common import check_batch, check_tasks, make_generator
from .functional import (
    AugmentParams,
    affine_theta,
    color_jitter,
    forward_linear,
    permute_channels,
)
from .kinds import TransformInfo
from .label_maps import LabelMaps, check_label_maps, merge_maps


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
    strength = check_number(name, value)
    return max(0.0, 1.0 - strength), 1.0 + strength


class BatchAugment:
    """Augment a whole batch on its device: a random affine and colour jitter per sample.

    One call draws B sets of parameters (``AugmentParams``) from ``generator`` on the CPU (so
    CPU and GPU runs draw the same numbers), moves them to the batch's device and applies them:
    one ``F.affine_grid`` for the batch, ``F.grid_sample`` bilinear for the image and nearest
    for every dense label map (masks, depth, normals: one pass for all; values are never
    blended across an object's edge), pixels brought in from outside the image set to each
    task's ``Task.label_fill`` (MultiDigits' mask: 0, background; a scene's semantic map:
    ``IGNORE_INDEX``; depth and normals: 0, a hole), then the colour jitter on the image only.
    A task that declares ``transforms`` for the affine or the flip gets its values changed with
    the map L they apply (``functional.forward_linear``; ``TaskKind.transform_values``: a flip
    negates the normals' x, a zoom by s divides depth by s; a shift changes no value). Class
    labels pass through (mapped by ``label_maps`` where the flip fired). Written with torch
    primitives because torchvision's transforms draw one set of parameters per call (the same
    for the whole batch, torchvision #8484) and kornia, which does this, is not a dependency.

    Args:
        tasks: the tasks whose labels the batches carry (default ``multidigits_tasks()``); the
            augmenter is audited against them when built (``audit``).
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
    integer B x H x W, class task: integer B, depth task: float B x H x W, normals task: float
    B x 3 x H x W}`` (plus MixUp/CutMix keys, passed through); the result has the same keys,
    shapes and dtypes.
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
        self.tasks = check_tasks(multidigits_tasks() if tasks is None else tasks)
        self.degrees = _range("degrees", degrees, symmetric=True)
        self.translate = _fractions("translate", translate)
        self.scale = _range("scale", scale, symmetric=False, low=1e-3)
        self.shear = _range("shear", shear, symmetric=True, low=-80.0, high=80.0)
        self.brightness = _jitter("brightness", brightness)
        self.contrast = _jitter("contrast", contrast)
        self.saturation = _jitter("saturation", saturation)
        self.channel_shuffle = check_probability("channel_shuffle", channel_shuffle)
        self.hflip = check_probability("hflip", hflip)
        self.label_maps = check_label_maps(label_maps, self.tasks)
        self.generator = make_generator(generator)
        self.last_params: AugmentParams | None = None
        self._luts = {t: self._lut(t, m) for t, m in self.label_maps.items()}
        if check:  # refuse, now, an augmenter that would corrupt a task's labels
            audit(self, self.tasks).raise_for_problems()

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
                                       batch_only=True, transforms_values=True,
                                       probe=self._probe_affine))
        if self.hflip:
            parts.append(TransformInfo("BatchAugment.hflip", "horizontal_flip",
                                       handles_masks=True, batch_only=True,
                                       takes_label_maps=True, label_maps=self.label_maps,
                                       transforms_values=True))
        if self.photometric:
            parts.append(TransformInfo("BatchAugment.color_jitter", "photometric",
                                       handles_masks=True, batch_only=True))
        if self.channel_shuffle:
            parts.append(TransformInfo("BatchAugment.channel_shuffle", "photometric",
                                       handles_masks=True, batch_only=True))
        return parts

    def _probe_affine(self, probes: torch.Tensor, seed: int) -> torch.Tensor:
        """The affine part alone on the audit's probes (float N x C x H x W), one draw per
        probe from a generator seeded with ``seed`` (``self.generator`` is left untouched)."""
        n, c, h, w = probes.shape
        params = self.sample_params(n, h, w, generator=torch.Generator().manual_seed(seed))
        params = replace(params, flip=torch.zeros(n, dtype=torch.bool))
        grid = F.affine_grid(affine_theta(params, h, w).to(probes.dtype), [n, c, h, w],
                             align_corners=False)
        return F.grid_sample(probes, grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False)

    def with_label_maps(self, label_maps: LabelMaps) -> BatchAugment:
        """A copy that also applies ``label_maps`` when its flip fires."""
        out = copy.copy(self)
        out.label_maps = check_label_maps(
            merge_maps(self.label_maps, label_maps, "BatchAugment"), self.tasks)
        out._luts = {t: out._lut(t, m) for t, m in out.label_maps.items()}
        audit(out, out.tasks).raise_for_problems()
        return out

    def __repr__(self) -> str:
        settings = {"degrees": self.degrees, "translate": self.translate, "scale": self.scale,
                    "shear": self.shear, "brightness": self.brightness,
                    "contrast": self.contrast, "saturation": self.saturation,
                    "channel_shuffle": self.channel_shuffle, "hflip": self.hflip,
                    "label_maps": self.label_maps}
        args = ", ".join(f"{k}={v}" for k, v in settings.items())
        return f"BatchAugment(tasks={tuple(self.tasks)}, {args})"

    def sample_params(self, batch_size: int, height: int, width: int, channels: int = 3,
                      generator: torch.Generator | None = None) -> AugmentParams:
        """Draw one set of parameters per sample, on the CPU, from ``generator`` (default: the
        augmenter's own)."""
        g, b = self.generator if generator is None else generator, batch_size
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
        image = check_batch("BatchAugment", batch, self.tasks)
        c = image.shape[1]
        if (self.photometric or self.channel_shuffle) and c not in (1, 3):
            raise ValueError(f"BatchAugment: batch['image'] has {c} channels, expected 1 or 3")
        return image

    def _move_labels(self, batch: Mapping[str, torch.Tensor], keys: list[str],
                     grid: torch.Tensor, p: AugmentParams) -> dict[str, torch.Tensor]:
        """The dense labels ``keys`` resampled in ``grid`` (B x H x W x 2), out-of-image pixels
        set to each task's fill, values transformed where the task declares ``transforms``."""
        # Labels in float32 at least (a float16 image must not round depths); one
        # nearest-neighbour pass for every map, so class indices and values are never blended.
        dtype = torch.promote_types(grid.dtype, torch.float32)
        pieces = [batch[k].to(dtype) for k in keys]
        pieces = [x[:, None] if x.ndim == 3 else x for x in pieces]  # B x channels x H x W
        fills = {k: self.tasks[k].label_fill for k in keys}
        inside = any(f != 0 for f in fills.values())  # zero padding gives the other fills
        if inside:  # a channel of ones: 0 where a pixel came from outside the image
            pieces.append(torch.ones_like(pieces[0][:, :1]))
        moved = F.grid_sample(torch.cat(pieces, 1), grid.to(dtype), mode="nearest",
                              padding_mode="zeros", align_corners=False)
        parts = moved.split([x.shape[1] for x in pieces], dim=1)
        out = {}
        for k, part in zip(keys, parts, strict=False):
            task, labels = self.tasks[k], batch[k]
            if fills[k] != 0:
                part = part.masked_fill(parts[-1] == 0, fills[k])
            part = part[:, 0] if labels.ndim == 3 else part
            if task.kind_spec.has_classes:
                part = part.round()
            linear = self._value_linear(task, p)
            if linear is not None:
                part = task.kind_spec.transform_values(part, linear.to(part.dtype))
            out[k] = part.to(labels.dtype)
        return out

    def _value_linear(self, task: Task, p: AugmentParams) -> torch.Tensor | None:
        """The map L (B x 2 x 2) by which ``task``'s values change: the parts (affine, flip)
        for which it declares ``transforms``; None if none."""
        geometric = self.geometric and (
            task.label_effects["geometric"] is LabelEffect.TRANSFORMS)
        flip = bool(self.hflip) and (
            task.label_effects["horizontal_flip"] is LabelEffect.TRANSFORMS)
        if not (geometric or flip):
            return None
        if not geometric:  # the flip alone
            n = len(p)
            p = replace(p, angle=p.angle.new_zeros(n), scale=p.scale.new_ones(n),
                        shear=p.shear.new_zeros(n, 2))
        if not flip:
            p = replace(p, flip=torch.zeros_like(p.flip))
        return forward_linear(p)

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
        dense = [k for k, t in self.tasks.items() if t.kind_spec.dense and k in batch]
        if self.geometric or self.hflip:
            theta = affine_theta(p, h, w).to(image.dtype)
            grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
            out[IMAGE] = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros",
                                       align_corners=False)
            if dense:
                out.update(self._move_labels(batch, dense, grid, p))
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
