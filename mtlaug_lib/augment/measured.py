"""The measured part of the audit: what a pipeline's geometric transforms do on the data.

A transform's kind says little about its size (``RandomRotation(10)`` and ``(180)`` are both
geometric), so the audit runs each geometric transform on probes of a sample of the data
(``mtlaug_lib.augment.probe``) and judges it against what each task declares it can take: how
much of its object must stay in view (``region``, ``min_visible``), how far it may rotate
(``max_rotation``), the image size its head takes (``input_size``). A label map for a mask is
checked on the data too: after the flip and the map, each class must be back where it belongs.

``needs_data`` says what the audit must measure, ``check_data`` gives the sample (by default
``course_data``: MultiDigits training samples), ``measure_all`` measures, and
``measured_problems`` and ``flip_repairs`` judge one task; ``mtlaug_lib.augment.audit`` puts
the verdicts in its table.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..core.tasks import FLIP_KINDS, LabelEffect, Task
from ..data.multidigits import MultiDigits
from .kinds import TransformInfo
from .probe import DRAWS, Measurement, Region, make_probes, measure

MAX_SHORT = 0.01  # the fraction of draws allowed to leave too little of an object in view
ROTATION_SLACK = 0.5  # degrees: resampling error of the measured angle


def needs_data(leaves: Sequence[tuple[str, TransformInfo]], tasks: Mapping[str, Task],
               maps: Mapping[str, dict[int, int]]) -> tuple[bool, list[Region], set[str]]:
    """Whether the audit must measure on data, the regions to measure, the masks it needs."""
    kinds = {info.kind for _, info in leaves}
    regions = list(dict.fromkeys(
        t.region for t in tasks.values() if t.region is not None and not t.kind_spec.dense))
    geometric = "geometric" in kinds and any(
        t.region is not None or t.max_rotation is not None or t.input_size is not None
        for t in tasks.values())
    permuted = {
        t.name for t in tasks.values() if t.kind_spec.dense
        and any(t.label_effects[k] is LabelEffect.PERMUTES for k in kinds & set(FLIP_KINDS))
        and (t.name in maps or any(t.name in info.label_maps for _, info in leaves))
    }
    keys = ({key for key, _ in regions} if geometric else set()) | permuted
    return geometric or bool(permuted), regions if geometric else [], keys


@functools.lru_cache(maxsize=1)
def course_data() -> dict[str, torch.Tensor]:
    """The audit's default sample of the data: the first 128 MultiDigits training samples
    (``{"image": float 128 x 3 x 28 x 28, "left", "right": int64 128, "mask": int64 128 x 28 x
    28}``), built once per process."""
    data = MultiDigits("train", size=DRAWS)
    return data.batch(torch.arange(len(data)))


def check_data(data: Mapping[str, torch.Tensor] | None, keys: set[str]) -> dict:
    """The sample to measure on (``course_data()`` if ``data`` is None), checked to carry the
    masks named by ``keys`` (integer N x H x W, the image's N, H and W)."""
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
class Measured:
    """What the audit measured of one geometric transform (or why it could not)."""

    measurement: Measurement | None = None
    error: str = ""
    sizes_in: tuple[tuple[int, int], ...] = ()
    sizes_out: tuple[tuple[int, int], ...] = ()
    last_resize: bool = False  # the last transform that changes the pipeline's output size


def measure_all(
    leaves: Sequence[tuple[str, TransformInfo]], data: Mapping[str, torch.Tensor],
    regions: Sequence[Region], seed: int,
) -> dict[str, Measured]:
    """Measure every geometric leaf on probes of ``data``; track the image size through them."""
    masks = {key: data[key] for key, _ in regions}
    probes = make_probes(masks or {"_": data["image"][:, 0].long()}, regions, DRAWS)
    size = {tuple(data["image"].shape[2:])}
    out: dict[str, Measured] = {}
    for name, info in leaves:
        if info.kind != "geometric":
            continue
        result = Measured(sizes_in=tuple(size))
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


def measured_problems(task: Task, measured: Measured | None, tasks: Mapping[str, Task]
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
    if task.kind_spec.dense or not limits:
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


def flip_repairs(task: Task, kind: str, mapping: Mapping[int, int],
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
