"""The arguments every augmenter takes: the tasks it is audited against, and its random source.

``check_tasks`` and ``make_generator`` are shared by the audit, the sample-level and batch-level
augmenters and the mixers, so that each argument is checked, and its error worded, once.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..core.tasks import Task


def check_tasks(tasks: Mapping[str, Task]) -> dict[str, Task]:
    """``tasks`` as a plain dict of ``Task`` by name, or a ``TypeError`` naming argument
    ``tasks``."""
    if not isinstance(tasks, Mapping) or not tasks:
        raise TypeError(
            f"argument 'tasks' is {tasks!r}, expected a non-empty dict of Task by name "
            "(such as multidigits_tasks())"
        )
    for name, task in tasks.items():
        if not isinstance(task, Task):
            raise TypeError(f"argument 'tasks': entry {name!r} is a {type(task).__name__}, "
                            "expected a Task")
    return dict(tasks)


def make_generator(generator: torch.Generator | int | None) -> torch.Generator | None:
    """A CPU generator from a random seed, the generator itself, or None (torch's global one).

    Augmenters draw their parameters on the CPU, so CPU and GPU runs draw the same ones.
    """
    if generator is None or isinstance(generator, torch.Generator):
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(
                f"argument 'generator' is on {generator.device}, expected a CPU generator "
                "(parameters are drawn on the CPU, so CPU and GPU runs draw the same ones)"
            )
        return generator
    # Not check_seed: a wrong type is a TypeError here, since a generator is also accepted.
    if isinstance(generator, bool) or not isinstance(generator, int) or generator < 0:
        raise TypeError(
            f"argument 'generator' is {generator!r}, expected a torch.Generator, a seed "
            "(int >= 0) or None"
        )
    return torch.Generator().manual_seed(generator)
