"""Label maps: the exchange of a task's classes that repairs a flip, ``{task: {old: new}}``.

A horizontal flip puts MultiDigits' left digit on the right: it exchanges the mask's classes 1
and 2, and the map ``{"mask": {1: 2, 2: 1}}``, applied whenever the flip fires, exchanges them
back. A map must be a permutation of the classes it names, with no class mapped to itself.
``check_label_maps`` checks a map against the tasks; ``plain_maps`` and ``merge_maps`` are what
a flip (``RandomFlip``, ``BatchAugment``) does with the maps it is given.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..core.tasks import Task

LabelMaps = Mapping[str, Mapping[int, int]]  # {task: {old class: new class}}


def check_label_maps(
    label_maps: LabelMaps | None, tasks: Mapping[str, Task], argument: str = "label_maps"
) -> dict[str, dict[int, int]]:
    """``{task: {old: new}}`` with known tasks and classes in range, as plain dicts; errors name
    ``argument``."""
    if label_maps is None:
        return {}
    if not isinstance(label_maps, Mapping):
        raise TypeError(
            f"argument {argument!r} is a {type(label_maps).__name__}, expected a dict "
            "{task: {old class: new class}}, such as {'mask': {1: 2, 2: 1}}"
        )
    out: dict[str, dict[int, int]] = {}
    for name, mapping in label_maps.items():
        if name not in tasks:
            raise ValueError(
                f"argument {argument!r} names task {name!r}, expected one of {tuple(tasks)}"
            )
        if not isinstance(mapping, Mapping) or not mapping:
            raise TypeError(
                f"argument {argument!r}: the map of task {name!r} is {mapping!r}, expected a "
                "non-empty dict {old class: new class}"
            )
        k = tasks[name].num_classes
        clean = {}
        for old, new in mapping.items():
            for value in (old, new):
                if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < k:
                    raise ValueError(
                        f"argument {argument!r}: the map of task {name!r} holds {value!r}, "
                        f"expected classes in [0, {k - 1}]"
                    )
            clean[int(old)] = int(new)
        _check_permutation(clean, name, argument)
        out[name] = clean
    return out


def _check_permutation(mapping: Mapping[int, int], task: str, argument: str) -> None:
    """A label map must exchange classes: a permutation of the classes it names, with no class
    mapped to itself (such an entry repairs nothing, and a map of only such entries would
    switch the audit off while changing no label)."""
    fixed = [old for old, new in mapping.items() if old == new]
    if fixed:
        raise ValueError(
            f"argument {argument!r}: the map of task {task!r} maps class(es) {fixed} to "
            "themselves, which repairs nothing; list only the classes that the flip exchanges, "
            "such as {1: 2, 2: 1}"
        )
    if set(mapping) != set(mapping.values()):
        raise ValueError(
            f"argument {argument!r}: the map of task {task!r} is {dict(mapping)}, which is not a "
            f"permutation (it sends {sorted(mapping)} to {sorted(mapping.values())}); a flip "
            "exchanges classes, so each class must appear once as old and once as new, such as "
            "{1: 2, 2: 1}"
        )


def plain_maps(label_maps: LabelMaps | None) -> dict[str, dict[int, int]]:
    """Label maps as plain dicts of ints (range checks need the tasks: see
    ``check_label_maps``)."""
    if label_maps is None:
        return {}
    if not isinstance(label_maps, Mapping) or not all(
        isinstance(m, Mapping) for m in label_maps.values()
    ):
        raise TypeError(
            f"argument 'label_maps' is {label_maps!r}, expected a dict {{task: {{old: new}}}}, "
            "such as {'mask': {1: 2, 2: 1}}"
        )
    return {str(t): {int(a): int(b) for a, b in m.items()} for t, m in label_maps.items()}


def merge_maps(own: LabelMaps, more: LabelMaps, who: str) -> dict[str, dict[int, int]]:
    """``own`` and ``more`` together; a task that both map differently is an error naming
    ``who`` (the flip that already maps it)."""
    merged = plain_maps(own)
    for task, mapping in plain_maps(more).items():
        if task in merged and merged[task] != mapping:
            raise ValueError(
                f"{who} already maps task {task!r} with {merged[task]}; argument 'label_maps' "
                f"gives {mapping}"
            )
        merged[task] = mapping
    return merged
