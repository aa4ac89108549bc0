"""The contract of every augmenter in ``AUGMENTERS``: a new augmenter gets these tests at once.

Each entry is built for the three MultiDigits tasks from one safe configuration (``EXAMPLES``;
a registered augmenter without one fails ``test_every_augmenter_has_an_example``) and must:
describe itself to the audit (known kinds, a clean audit, a refusal for a task that its kinds
break); keep the keys, shapes and dtypes of what it augments (labels stay integer classes; a
mixer only adds the mixing keys); move masks with the images when it moves pixels, and leave
them alone when it does not; give the same output for the same random seed; name the argument
or key it refuses; and show itself on one line. Tiny data: 8 samples.

Whether an augmenter takes samples or batches is read from its own description: a batch
augmenter's parts are ``batch_only`` (which is how ``SampleTransform`` refuses one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from augment_checks import assert_aligned
from torchvision.transforms import v2

from mtlaug_lib.augment.audit import LabelSafetyError, audit
from mtlaug_lib.augment.batch import BatchAugment
from mtlaug_lib.augment.kinds import TransformInfo, walk
from mtlaug_lib.augment.mixing import CutMix, MixUp
from mtlaug_lib.augment.registry import AUGMENTERS
from mtlaug_lib.augment.sample import SampleTransform
from mtlaug_lib.core.batch_format import IMAGE, MIX_KEYS
from mtlaug_lib.core.checks import is_int_tensor
from mtlaug_lib.core.tasks import CLASSIFICATION, TRANSFORM_KINDS, LabelEffect, Task
from mtlaug_lib.data.multidigits import MultiDigits

pytestmark = pytest.mark.usefixtures("one_thread")

# One safe configuration per augmenter: (tasks, random seed) -> augmenter. Sizes the audit
# allows for the digits (the course's notebook 03 uses them).
EXAMPLES: dict[str, Callable[[dict[str, Task], int], Any]] = {
    "SampleTransform": lambda tasks, seed: SampleTransform(
        v2.Compose([v2.RandomAffine(10, translate=(0.05, 0.05)), v2.ColorJitter(0.3, 0.3)]),
        tasks),
    "BatchAugment": lambda tasks, seed: BatchAugment(
        tasks, degrees=10, translate=(0.05, 0.05), scale=(0.9, 1.1), brightness=0.3,
        generator=seed),
    "MixUp": lambda tasks, seed: MixUp(tasks, generator=seed),
    "CutMix": lambda tasks, seed: CutMix(tasks, generator=seed),
}
NAMES = sorted(AUGMENTERS)


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    data = MultiDigits("train", size=8, seed=0)
    return data.batch(torch.arange(len(data)))


def parts(augmenter: Any) -> list[TransformInfo]:
    return [info for _, info in walk(augmenter)]


def takes_batches(augmenter: Any) -> bool:
    return all(info.batch_only for info in parts(augmenter))


def augment(augmenter: Any, batch: dict[str, torch.Tensor], seed: int) -> dict[str, Any]:
    """``augmenter`` on ``batch`` (sample by sample for a sample augmenter, stacked), after
    seeding torch's global generator (which torchvision's transforms draw from)."""
    torch.manual_seed(seed)
    if takes_batches(augmenter):
        return augmenter(batch)
    outs = [augmenter({k: v[i] for k, v in batch.items()}) for i in range(len(batch[IMAGE]))]
    return {k: torch.stack([out[k] for out in outs]) for k in outs[0]}


def build(name: str, tasks: dict[str, Task], seed: int = 0) -> Any:
    return EXAMPLES[name](tasks, seed)


def test_every_augmenter_has_an_example() -> None:
    assert set(EXAMPLES) == set(AUGMENTERS)  # none escapes the contract
    assert all(AUGMENTERS[name].__name__ == name for name in AUGMENTERS)


@pytest.mark.parametrize("name", NAMES)
def test_it_describes_itself_to_the_audit(name, tasks) -> None:
    augmenter = build(name, tasks)
    assert isinstance(augmenter, AUGMENTERS[name])
    infos = parts(augmenter)
    assert infos and all(info.kind in TRANSFORM_KINDS for info in infos)
    assert takes_batches(augmenter) or not any(info.batch_only for info in infos)
    report = audit(augmenter, tasks)
    assert report.ok, str(report)
    assert len(report) == len(infos) * len(tasks)  # one cell per part and task
    # Audited when built: a task that its kinds break refuses it.
    fragile = Task("fragile", CLASSIFICATION, 10,
                   label_effects={info.kind: "breaks" for info in infos})
    with pytest.raises(LabelSafetyError, match=r"x task 'fragile'"):
        build(name, {**tasks, "fragile": fragile})


@pytest.mark.parametrize("name", NAMES)
def test_it_keeps_the_keys_shapes_and_dtypes(name, tasks, batch) -> None:
    out = augment(build(name, tasks), batch, seed=0)
    assert set(batch) <= set(out) and set(out) - set(batch) <= set(MIX_KEYS)
    for key, value in batch.items():
        assert type(out[key]) is torch.Tensor
        assert out[key].shape == value.shape and out[key].dtype == value.dtype, key
    assert out[IMAGE].is_floating_point()
    for name_, task in tasks.items():
        labels = out[name_]
        assert is_int_tensor(labels)
        assert 0 <= int(labels.min()) and int(labels.max()) < task.num_classes


@pytest.mark.parametrize("name", NAMES)
def test_masks_move_with_the_images_or_stay(name, tasks, batch) -> None:
    augmenter = build(name, tasks)
    out = augment(augmenter, batch, seed=0)
    # The kinds under which a mask moves with the image are those the mask task declares so.
    moves = any(tasks["mask"].label_effects[info.kind] is LabelEffect.MOVES
                for info in parts(augmenter))
    if moves:
        assert not torch.equal(out["mask"], batch["mask"])  # it did move pixels
        assert_aligned(out[IMAGE], out["mask"])
    else:
        assert torch.equal(out["mask"], batch["mask"])


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_gives_the_same_output(name, tasks, batch) -> None:
    first = augment(build(name, tasks, seed=3), batch, seed=3)
    again = augment(build(name, tasks, seed=3), batch, seed=3)
    assert all(torch.equal(first[k], again[k]) for k in first)
    other = augment(build(name, tasks, seed=4), batch, seed=4)
    assert not torch.equal(other[IMAGE], first[IMAGE])  # the seed does matter


@pytest.mark.parametrize("name", NAMES)
def test_it_names_what_it_refuses(name, tasks, batch) -> None:
    with pytest.raises(TypeError, match="argument 'tasks'"):
        build(name, {"left": "not a task"})
    augmenter = build(name, tasks)
    with pytest.raises(KeyError, match="'depth'"):
        augment(augmenter, {**batch, "depth": torch.zeros(8, dtype=torch.int64)}, seed=0)
    with pytest.raises((TypeError, ValueError), match=r"\['left'\]"):
        augment(augmenter, {**batch, "left": batch["left"].float()}, seed=0)


@pytest.mark.parametrize("name", NAMES)
def test_its_repr_is_one_line(name, tasks) -> None:
    text = repr(build(name, tasks))
    assert text.startswith(f"{name}(") and "\n" not in text
