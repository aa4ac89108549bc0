"""The label-safety audit: the table transform x task, and whether the pipeline may run.

An augmentation must do to every task's labels what it does to the image, and some transforms
cannot. Every transform has a *kind* (``mtlaug_lib.augment.kinds``), and every task declares what
each kind does to its labels (``Task.label_effects``: keeps, moves, transforms, breaks, permutes,
mixes). ``audit(pipeline, tasks)`` judges each transform for each task: from the declarations, from
what the transform does with masks and losses, and, for geometric transforms and label maps, from
what it measurably does on the data (``mtlaug_lib.augment.measured``). The result is
an ``Audit``, whose ``raise_for_problems`` raises ``LabelSafetyError``; the library's augmenters
call it when built. ``check_pipeline`` (``mtlaug_lib.augment.repair``) also repairs flips.

This module names no augmenter class: it sees every transform through ``kinds.walk`` and the
hooks described there. ``declare_kind`` and ``transform_kinds`` are re-exported from ``kinds``,
as part of the audit's interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..core.tasks import FLIP_KINDS, LabelEffect, Task
from .common import check_tasks
from .kinds import TransformInfo, declare_kind, transform_kinds, walk
from .label_maps import LabelMaps, check_label_maps
from .measured import Measured, check_data, flip_repairs, measure_all, measured_problems, needs_data

__all__ = ["Audit", "AuditRow", "LabelSafetyError", "audit", "declare_kind", "transform_kinds"]


class LabelSafetyError(ValueError):
    """A pipeline would corrupt a task's labels (raised by ``Audit.raise_for_problems``, hence by
    ``check_pipeline`` and by the library's augmenters when built)."""


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

    ``ok`` is True when every cell is allowed; ``problems()`` lists the refused ones and
    ``raise_for_problems()`` raises ``LabelSafetyError`` naming them; ``str``
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

    def raise_for_problems(self) -> None:
        """Raise ``LabelSafetyError`` naming each refused transform, task and reason, if any."""
        problems = self.problems()
        if problems:
            lines = [f"transform {r.transform} ({r.kind}) x task {r.task!r}: {r.reason}"
                     for r in problems]
            raise LabelSafetyError(
                f"the pipeline would corrupt labels ({len(problems)} problem(s)):\n  "
                + "\n  ".join(lines)
            )

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


def _judge(
    name: str, info: TransformInfo, task: Task, maps: Mapping[str, dict[int, int]],
    measured: Measured | None, tasks: Mapping[str, Task], data: Mapping[str, torch.Tensor] | None,
) -> AuditRow:
    """One cell of the audit; ``maps`` are the label maps given to ``audit``, ``measured`` what
    the audit measured of the transform (geometric transforms only)."""
    effect = task.label_effects[info.kind]
    own = info.label_maps.get(task.name)
    row = {"transform": name, "kind": info.kind, "task": task.name, "effect": effect}
    if own is not None and effect not in (LabelEffect.PERMUTES, LabelEffect.BREAKS):
        # The transform applies its map whenever it fires: on labels that are right, a map
        # would make them wrong.
        return AuditRow(**row, allowed=False, label_map=dict(own), reason=(
            f"it carries the label map {dict(own)} for task {task.name!r}, but the task declares "
            f"that a transform of kind {info.kind!r} {effect.value} its labels, so the map would "
            "corrupt them"))
    problems, facts = measured_problems(task, measured, tasks)
    if problems:
        return AuditRow(**{**row, "effect": LabelEffect.BREAKS}, allowed=False,
                        reason="; ".join(problems))
    facts = f" ({facts})" if facts else ""
    if effect is LabelEffect.KEEPS:
        return AuditRow(**row, allowed=True, reason=f"the labels stay right as they are{facts}")
    if effect in (LabelEffect.MOVES, LabelEffect.TRANSFORMS):
        if not task.kind_spec.dense:
            return AuditRow(**row, allowed=False, reason=(
                f"the task declares that its labels move under a transform of kind "
                f"{info.kind!r}, but only labels per pixel can move with the image; declare "
                "'keeps' or 'breaks' for this kind"))
        what = "mask" if task.kind_spec.has_classes else f"{task.kind} map"
        if not info.handles_masks:
            why = ("torchvision.transforms (v1) transforms the image only; use "
                   "torchvision.transforms.v2" if info.v1 else
                   f"{info.name} does not transform masks")
            return AuditRow(**row, allowed=False, reason=(
                f"the {what} must move with the image, but {why}"))
        if effect is LabelEffect.MOVES:
            return AuditRow(**row, allowed=True, reason=f"the {what} moves with the image")
        if not info.transforms_values:
            return AuditRow(**row, allowed=False, reason=(
                f"no value transform is declared for {info.name}: the {task.kind} values of "
                f"task {task.name!r} must change with the image under a {info.kind} "
                f"transform, but {info.name} would only move them (torchvision passes a "
                "tensor type it has no kernel for through untouched); use BatchAugment, "
                "RandomFlip or a v2 transform in "
                "mtlaug_lib.augment.values.TRANSFORMS_WITH_VALUE_KERNELS"))
        return AuditRow(**row, allowed=True, reason=(
            f"the {what} moves with the image and its values are transformed with it"))
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
    if task.kind_spec.dense and data is not None:
        problem = flip_repairs(task, info.kind, mapping, data)
        if problem:
            return AuditRow(**row, allowed=False, label_map=dict(mapping), reason=problem)
    return AuditRow(**row, allowed=True, label_map=dict(mapping), reason=(
        f"repaired: the label map {dict(mapping)} is applied whenever the flip fires"
        + (" (checked on the data: each class is back where it belongs)"
           if task.kind_spec.dense else "")))


def audit(
    pipeline: Any, tasks: Mapping[str, Task], label_maps: LabelMaps | None = None, *,
    data: Mapping[str, torch.Tensor] | None = None, seed: int = 0,
) -> Audit:
    """What each transform of ``pipeline`` does to each task's labels, and whether it may run.

    Args:
        pipeline: a torchvision v2 (or v1) transform or container, a list of transforms, or
            the library's own augmenters (``SampleTransform``, ``RandomFlip``,
            ``BatchAugment``, ``MixUp``, ``CutMix``: any transform with the hooks of
            ``mtlaug_lib.augment.kinds``).
        tasks: the tasks, by name; each declares the effect of each kind of transform, and
            what a geometric transform may do (``region``, ``min_visible``, ``max_rotation``,
            ``input_size``).
        label_maps: ``{task: {old: new}}``: for a flip that exchanges ``task``'s classes, the
            exchange that undoes it (applied when the flip fires; see ``check_pipeline``). It
            must be a permutation with no class mapped to itself, and for a mask it must put
            every class back where it belongs on the data. A map that no flip needs is an error.
        data: a sample of the data to measure on: ``{"image": N x C x H x W, mask key: integer
            N x H x W}``; by default the first 128 MultiDigits training samples.
        seed: the random seed of the measuring draws (the same figures on every machine).

    Returns:
        an ``Audit``: one ``AuditRow`` per transform and task.

    A cell is allowed when the effect is ``keeps``; ``moves`` and the transform moves masks (a dense
    task); ``transforms`` and the transform moves the labels and transforms their values
    (``TransformInfo.transforms_values``: depth and normals); ``mixes`` and the transform records
    the mixing for the loss; ``permutes`` and a label map that undoes the flip. A geometric
    transform is measured on the data (``mtlaug_lib.augment.probe``): it is refused for a task when
    more than 1% of its random draws leave less than ``min_visible`` of the task's object in view,
    when it rotates past ``max_rotation``, or when the pipeline's output is not ``input_size``; the
    reason gives the measured figures. An unknown transform is an error.
    """
    tasks = check_tasks(tasks)
    maps = check_label_maps(label_maps, tasks)
    leaves = list(walk(pipeline))
    for name, info in leaves:
        check_label_maps(info.label_maps, tasks, f"label maps of {name}")
    needed, regions, keys = needs_data(leaves, tasks, maps)
    sample = check_data(data, keys) if needed else None
    measured = measure_all(leaves, sample, regions, seed) if sample is not None else {}
    rows, flipped = [], set()
    for name, info in leaves:
        for task in tasks.values():
            rows.append(_judge(name, info, task, maps, measured.get(name), tasks, sample))
            if info.kind in FLIP_KINDS and task.label_effects[info.kind] in (
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
