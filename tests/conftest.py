"""Fixtures shared by the test modules."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from mtlaug_lib.core.tasks import Task, select_tasks
from mtlaug_lib.data.multidigits import multidigits_tasks


@pytest.fixture(scope="module")
def one_thread():
    """Small tensor operations run faster on one thread on a shared 2-core machine (a second
    intra-op thread stalls whenever another process holds a core). Modules that augment many
    small tensors use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    """The course's three tasks on MultiDigits: ``left``, ``right`` and ``mask``."""
    return multidigits_tasks()


@pytest.fixture(scope="module")
def digit_tasks() -> dict[str, Task]:
    """The two digit-classification tasks, ``left`` and ``right``."""
    return select_tasks(multidigits_tasks(), ["left", "right"])


@pytest.fixture(scope="module")
def unlimited() -> dict[str, Task]:
    """The course's tasks without the limits that the audit measures geometric transforms
    against (region, max_rotation, input_size): for tests of an augmenter's mechanics with
    ranges wider than the audit allows for the digits."""
    return {name: replace(task, region=None, max_rotation=None, input_size=None)
            for name, task in multidigits_tasks().items()}


@pytest.fixture(scope="module")
def mask_only(tasks) -> dict[str, Task]:
    """The segmentation task alone."""
    return select_tasks(tasks, ["mask"])
