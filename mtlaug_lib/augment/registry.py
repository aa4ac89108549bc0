"""Every augmenter the library ships, by name: ``AUGMENTERS``.

An augmenter takes the tasks it is audited against (``tasks=``), is audited when built, and
maps a sample dict (``SampleTransform``) or a batch dict (``BatchAugment``, ``MixUp``,
``CutMix``) to one with the same keys, shapes and dtypes (a mixer adds the mixing keys of
``mtlaug_lib.core.batch_format``). ``tests/test_contract_augment.py`` runs the standard tests on
every entry, so a new augmenter is its own module plus one line here (and one example
configuration in that test). ``RandomFlip`` is not an entry: it is a transform inside a
``SampleTransform`` pipeline, not an augmenter of its own (it takes no tasks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .batch import BatchAugment
from .mixing import CutMix, MixUp
from .sample import SampleTransform

Augmenter = Callable[..., dict[str, Any]]  # a sample or batch dict in, the same keys out

AUGMENTERS: dict[str, Callable[..., Augmenter]] = {
    "SampleTransform": SampleTransform,
    "BatchAugment": BatchAugment,
    "MixUp": MixUp,
    "CutMix": CutMix,
}
