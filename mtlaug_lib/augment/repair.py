"""Judge a pipeline, then repair its flips: ``check_pipeline``.

A flip that only exchanges a task's classes is safe once a label map exchanges them back when
it fires. ``check_pipeline`` audits a pipeline (``mtlaug_lib.augment.audit``) and, given label
maps, returns a copy in which every flip applies them: a torchvision flip becomes the library's
``RandomFlip``, a flip with the ``with_label_maps`` hook (``RandomFlip``, ``BatchAugment``) gets
the maps, and containers are rebuilt around their repaired members (a wrapper such as
``SampleTransform`` through its ``with_inner`` hook, ``mtlaug_lib.augment.kinds``).

Why a module of its own, above the audit and the flip: the repair builds a ``RandomFlip``, and
the audit must not know the augmenters (they are built on it, and call it when built). Here the
dependency runs one way, audit and flip below, repair above, and ``SampleTransform`` (which
takes label maps) above the repair. A registry of repairs that the flip's module fills when
imported would also break the cycle, but then what ``check_pipeline`` returns would depend on
which modules happen to have been imported; an import says it once, in the code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..core.tasks import LabelEffect, Task
from .audit import audit
from .common import check_tasks
from .flip import RandomFlip
from .kinds import children, describe_transform, inner, walk
from .label_maps import LabelMaps, check_label_maps


def check_pipeline(
    pipeline: Any, tasks: Mapping[str, Task], label_maps: LabelMaps | None = None, *,
    data: Mapping[str, torch.Tensor] | None = None, seed: int = 0,
) -> Any:
    """Refuse a pipeline that would corrupt a task's labels; return the pipeline to use.

    Raises ``LabelSafetyError`` naming each refused transform, task and reason (see
    ``audit``, which measures on ``data`` with the random seed ``seed``). Without
    ``label_maps`` the pipeline is returned as given. With them, the returned pipeline applies
    each map when its flip fires: a torchvision ``RandomHorizontalFlip``/``RandomVerticalFlip``
    is replaced by ``RandomFlip`` with the same probability, and the library's own flips get
    the maps. Use the returned pipeline.

    Example: ``check_pipeline(v2.RandomHorizontalFlip(), {"mask": tasks["mask"]},
    label_maps={"mask": {1: 2, 2: 1}})`` returns
    ``RandomFlip("horizontal", p=0.5, label_maps={"mask": {1: 2, 2: 1}})``.
    """
    audit(pipeline, tasks, label_maps, data=data, seed=seed).raise_for_problems()
    if not label_maps:
        return pipeline
    return _repair(pipeline, check_tasks(tasks), check_label_maps(label_maps, tasks))


def _maps_for(kind: str, tasks: Mapping[str, Task], maps: Mapping[str, dict[int, int]]):
    """The maps of the tasks whose classes a flip of ``kind`` exchanges."""
    return {t: m for t, m in maps.items()
            if tasks[t].label_effects[kind] is LabelEffect.PERMUTES}


def _repair(transform: Any, tasks: Mapping[str, Task], maps: Mapping[str, dict[int, int]]):
    """``transform`` with every flip that breaks a task in ``maps`` applying that map."""
    wrapped = inner(transform)
    if wrapped is not None:
        new = _repair(wrapped, tasks, maps)
        return transform if new is wrapped else transform.with_inner(new)
    members = children(transform)
    if members is not None:
        new = [_repair(c, tasks, maps) for c in members]
        if all(a is b for a, b in zip(new, members, strict=True)):
            return transform
        if isinstance(transform, (list, tuple)):
            return type(transform)(new)
        extra = {"p": transform.p} if hasattr(transform, "p") else {}
        return type(transform)(new, **extra)
    if hasattr(transform, "with_label_maps"):
        kinds = [info.kind for _, info in walk(transform) if info.takes_label_maps]
        wanted = {t: m for kind in kinds for t, m in _maps_for(kind, tasks, maps).items()}
        return transform.with_label_maps(wanted) if wanted else transform
    info = describe_transform(transform)
    if info.takes_label_maps:
        wanted = _maps_for(info.kind, tasks, maps)
        if wanted:
            direction = "horizontal" if info.kind == "horizontal_flip" else "vertical"
            return RandomFlip(direction, p=transform.p, label_maps=wanted)
    return transform
