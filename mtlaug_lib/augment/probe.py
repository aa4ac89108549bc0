"""What a geometric transform does to the data, measured: the label-safety audit's oracle.

A transform's kind says little about its size: ``RandomRotation(10)`` and
``RandomRotation(180)`` are both "geometric", and ``RandomResizedCrop(28)`` keeps a digit in one
draw and cuts it away in the next. So the audit runs each geometric transform on *probes*
built from a sample of the data and measures, per random draw:

- how much of each object stays in view and in the frame (the masks are the oracle: an object
  is the set of pixels of one mask class, such as MultiDigits' left digit, ``mask == 1``);
- the rotation it applied, in degrees;
- the size of its output.

A probe is a float image with channels ``[x, y, inside, object 1, object 2, ...]``: the source
pixel's coordinates, a channel of ones, and one 0/1 indicator per object. The transform moves
all channels together (one call, one random draw). At each output pixel whose ``inside``
channel is 1, the coordinate channels say which source point it shows, so a least-squares fit
gives the affine map ``source = A @ output + b``: the rotation is the angle of ``A`` and an
output pixel covers ``|det A|`` source pixels, hence the visible fraction of an object is
``sum(indicator out) * |det A| / sum(indicator in)`` (exact for crops, resizes, shifts and
rotations up to resampling; an average for non-affine warps such as ``ElasticTransform``).

Everything runs on the CPU from a fixed seed (inside ``torch.random.fork_rng``, so the caller's
random state is untouched): the same pipeline gets the same figures on every machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torchvision import tv_tensors

Region = tuple[str, int]  # (mask key in the data, class): the pixels of one object
Probe = Callable[[torch.Tensor, int], "torch.Tensor | Sequence[torch.Tensor]"]
"""A geometric transform as the audit runs it: ``probe(probes, seed)`` takes float N x C x H x W
probes and returns each transformed with its own random draw (N x C x H' x W', or a list of
N tensors C x H_i x W_i when sizes vary), drawing from ``seed`` only."""

DRAWS = 128  # random draws per transform: enough to see a 3% failure rate with 98% probability
FIT_GRID = 32  # the affine fit uses at most about 32 x 32 pixels of an output
_INSIDE = 0.999  # a pixel counts as inside the source when its 'inside' channel is above this


@dataclass(frozen=True)
class Measurement:
    """What one geometric transform did to the probes, one value per draw (D draws).

    Attributes:
        visible: ``{region: float D}``, the fraction of the object that stayed in view, in [0, 1].
        angle: float D, the rotation in degrees (absolute value), NaN where nothing stayed in view.
        sizes: the distinct output sizes ``(H, W)``, in order of first appearance.
    """

    visible: Mapping[Region, torch.Tensor]
    angle: torch.Tensor
    sizes: tuple[tuple[int, int], ...]

    @property
    def draws(self) -> int:
        return len(self.angle)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block (and restore the setting after).

    A probe is a few thousand pixels: splitting such work over threads costs more than it
    saves, and on a busy machine each call waits for every thread (measured here: 0.6 ms a
    rotation on one thread, 46 ms on two with the other core loaded).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def torchvision_probe(transform: Callable) -> Probe:
    """The probe of a torchvision (v2 or v1) transform: one call per draw.

    Each probe goes in as one ``tv_tensors.Image`` (v1 sees a plain tensor), so all its
    channels get one draw of random parameters, and a transform restricted to images (such as
    ``v2.Lambda(f, tv_tensors.Image)``) does apply. Draws come from torch's global generator,
    so it is seeded inside ``fork_rng`` (the caller's random state is restored afterwards).
    """

    def probe(probes: torch.Tensor, seed: int) -> list[torch.Tensor]:
        with torch.random.fork_rng(devices=[]), one_thread():
            torch.manual_seed(seed)
            return [transform(tv_tensors.Image(p)).as_subclass(torch.Tensor) for p in probes]

    return probe


def make_probes(
    masks: Mapping[str, torch.Tensor], regions: Sequence[Region], draws: int
) -> torch.Tensor:
    """``draws`` probes, float D x (3 + R) x H x W, cycling over the samples of ``masks``.

    masks: ``{key: integer N x H x W}``; regions: R ``(key, class)`` pairs.
    """
    shapes = {tuple(m.shape) for m in masks.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"argument 'masks' has shapes {sorted(shapes)}, expected one N x H x W")
    n, h, w = next(iter(shapes))
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                          torch.arange(w, dtype=torch.float32), indexing="ij")
    index = torch.arange(draws) % n
    coords = torch.stack([x, y, torch.ones(h, w)]).expand(draws, -1, -1, -1)
    objects = [(masks[key][index] == cls).float() for key, cls in regions]
    return torch.cat([coords, torch.stack(objects, 1) if objects else coords[:, :0]], 1)


def _fit(outputs: torch.Tensor, step: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares ``source = A @ (u, v) + b`` over the inside pixels of each output.

    outputs: float D x C x H' x W', every ``step``-th pixel of the real outputs. Returns
    ``|det A|`` and the rotation of ``A`` in degrees (absolute value), float D each, NaN
    where fewer than 3 pixels are inside.

    Solved through the 3 x 3 normal equations (weighted sums over the pixels), which is all a
    plane fit needs; an affine map is fixed by any three points, so a subsample of a large
    output's pixels (``step``) only averages less resampling error.
    """
    grid = outputs.double()
    d, _, h, w = grid.shape
    weight = (grid[:, 2] > _INSIDE).double().flatten(1)  # D x P: 1 where inside
    v, u = torch.meshgrid(torch.arange(0, h * step, step, dtype=torch.float64),
                          torch.arange(0, w * step, step, dtype=torch.float64), indexing="ij")
    design = torch.stack([u.flatten(), v.flatten(), torch.ones(h * w, dtype=torch.float64)], 1)
    pairs = (design[:, :, None] * design[:, None, :]).flatten(1)  # P x 9
    gram = (weight @ pairs).view(d, 3, 3)
    target = grid[:, :2].flatten(2) * weight[:, None]  # D x 2 x P: x, y where inside
    rhs = (target @ design).transpose(1, 2)  # D x 3 x 2
    enough = weight.sum(1) >= 3
    eye = torch.eye(3, dtype=torch.float64).expand(d, 3, 3)
    coef = torch.linalg.solve(torch.where(enough[:, None, None], gram, eye), rhs)
    a_xu, a_yu, a_xv, a_yv = coef[:, 0, 0], coef[:, 0, 1], coef[:, 1, 0], coef[:, 1, 1]
    det = (a_xu * a_yv - a_xv * a_yu).abs()
    # The rotation part of A (its polar factor): exact for rotations with scale and shift.
    angle = torch.rad2deg(torch.atan2(a_yu - a_xv, a_xu + a_yv)).abs()
    nan = torch.tensor(math.nan, dtype=torch.float64)
    return torch.where(enough, det, nan).float(), torch.where(enough, angle, nan).float()


def measure(probe: Probe, probes: torch.Tensor, regions: Sequence[Region], seed: int = 0
            ) -> Measurement:
    """Run ``probe`` on ``probes`` (from ``make_probes`` with the same ``regions``) and measure
    each draw: the visible fraction of each region, the rotation, the output size."""
    with one_thread():
        return _measure(probe(probes, seed), probes, regions)


def _measure(outputs: torch.Tensor | Sequence[torch.Tensor], probes: torch.Tensor,
             regions: Sequence[Region]) -> Measurement:
    if isinstance(outputs, torch.Tensor):
        outputs = list(outputs)
    for out in outputs:
        if out.ndim != 3 or out.shape[0] != probes.shape[1]:
            raise ValueError(
                f"the transform turned a {tuple(probes.shape[1:])} probe into "
                f"{tuple(out.shape)}; expected the same channels"
            )
    sizes = tuple(dict.fromkeys(tuple(out.shape[1:]) for out in outputs))
    det, angle = torch.empty(len(outputs)), torch.empty(len(outputs))
    for size in sizes:  # one batched fit per output size
        index = [i for i, out in enumerate(outputs) if tuple(out.shape[1:]) == size]
        step = max(1, math.ceil(max(size) / FIT_GRID))
        det[index], angle[index] = _fit(torch.stack([outputs[i][:, ::step, ::step] for i in index]),
                                        step)
    objects = torch.stack([out[3:].sum((1, 2)) for out in outputs])  # D x R
    before = probes[:, 3:].sum((2, 3))  # D x R
    # NaN det (nothing inside) means nothing stayed in view; an object absent from a
    # sample counts as fully visible.
    fraction = (objects * det.nan_to_num(0.0)[:, None] / before.clamp_min(1e-12)).clamp(0, 1)
    fraction = torch.where(before > 0, fraction, torch.ones_like(fraction))
    visible = {region: fraction[:, r] for r, region in enumerate(regions)}
    return Measurement(visible, angle, sizes)
