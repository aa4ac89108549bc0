"""The arguments every augmenter takes: the tasks it is audited against, its random source, and
the batch it transforms.

``check_tasks``, ``make_generator`` and ``check_batch`` are shared by the audit, the sample-level
and batch-level augmenters and the mixers, so that each argument is checked, and its error
worded, once.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..core.batch_format import IMAGE, MIX_PREFIX
from ..core.checks import describe_value, is_int_tensor
from ..core.tasks import Task, TaskKind


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


def label_layout(kind: TaskKind) -> str:
    """The layout of a batch's labels of ``kind`` in words: ``"B"``, ``"B x H x W"``,
    ``"B x 3 x H x W"`` (from the kind's ``label_shape``)."""
    names = {-1: "B", -2: "H", -3: "W"}
    return " x ".join(names.get(d, str(d)) for d in kind.label_shape(-1, -2, -3))


def check_batch(
    who: str, batch: object, tasks: Mapping[str, Task], action: str = "transform"
) -> torch.Tensor:
    """The image of ``batch`` (float B x C x H x W) after checking that every other entry is
    the labels of one of ``tasks`` in its kind's layout: integer B (a class per image), integer
    B x H x W (a mask), float B x H x W (depth) or float B x 3 x H x W (normals). Mixing keys
    (``MIX_PREFIX``) pass. ``who`` names the augmenter in the errors, ``action`` what it would
    do with an unknown entry."""
    if not isinstance(batch, Mapping) or IMAGE not in batch:
        got = tuple(batch) if isinstance(batch, Mapping) else type(batch).__name__
        raise KeyError(f"{who}: the batch is {got}, expected a dict with 'image'")
    image = batch[IMAGE]
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or not image.is_floating_point():
        raise ValueError(
            f"{who}: batch['image'] is a {describe_value(image)}, expected float "
            "B x C x H x W in [0, 1]"
        )
    b, _, h, w = image.shape
    for key, value in batch.items():
        if key == IMAGE or key.startswith(MIX_PREFIX):  # a mixer's keys are not labels
            continue
        task = tasks.get(key)
        if task is None:
            raise KeyError(
                f"{who}: the batch holds {key!r}, which is neither 'image' nor one of the "
                f"tasks {tuple(tasks)}; it cannot tell how to {action} it"
            )
        spec = task.kind_spec
        want = spec.label_shape(b, h, w)
        if not (isinstance(value, torch.Tensor) and tuple(value.shape) == want
                and (is_int_tensor(value) if spec.has_classes else value.is_floating_point())):
            layout = label_layout(spec)
            if spec.has_classes:
                layout = f"integer labels {layout}" + (" (a mask)" if spec.dense else "")
            else:
                layout = f"float labels {layout} ({task.kind})"
            raise ValueError(
                f"{who}: batch[{key!r}] is a {describe_value(value)}, expected {layout} = "
                f"{want} for the image {tuple(image.shape)}"
            )
    return image
